// One-key answers on the review page: c crack, n no crack, s skip, u undo the last answer.
document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  const tag = (event.target.tagName || "").toLowerCase();
  if (tag === "input" || tag === "textarea" || tag === "select") return;
  const button = event.key === "u"
    ? document.getElementById("undo")
    : document.querySelector(`button.answer[data-key="${event.key}"]`);
  if (button && !button.disabled) {
    event.preventDefault();
    document.querySelectorAll("button.answer, #undo").forEach((b) => { b.disabled = true; });
    button.form.submit();  // one answer per key press, even when keys repeat
  }
});
