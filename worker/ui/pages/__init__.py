"""The console's pages, one router each."""
