"""What tests and benchmarks share: real processes, throwaway services, fault scenarios."""
