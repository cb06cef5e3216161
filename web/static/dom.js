// Tiny DOM builder. Text only ever goes in through textContent, so stored text (camera names, case titles)
// can never become markup or script.

/** Create ``tag`` with a class and children (strings become text nodes, null/false are skipped). */
export function el(tag, className = "", ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A Chinese label with its smaller English counterpart. */
export function bilingual(zh, en, className = "") {
  return el("span", `bi ${className}`.trim(), el("span", "zh", zh), en ? el("span", "en", en) : null);
}

/** A button with a bilingual label that calls ``onClick``. */
export function actionButton(zh, en, onClick) {
  const b = el("button", "", bilingual(zh, en));
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

/** Put the CSS text ``css`` into the page once, as <style id=``id``> (overlays that carry their own styles). */
export function installStyle(id, css) {
  if (document.getElementById(id)) return;
  const style = document.createElement("style");
  style.id = id;
  style.textContent = css;
  document.head.appendChild(style);
}

/** Only same-site absolute paths are used as image sources. */
export function safePath(url) {
  return typeof url === "string" && url.startsWith("/") && !url.startsWith("//") ? url : null;
}

/** Hide the children of a fixed-height list that would be cut off at its bottom: on a wall a half row reads
 *  as a glitch. Rows are kept in order; whatever fits is shown. */
export function fitRows(list) {
  const children = [...list.children].filter((child) => !child.classList.contains("empty"));
  for (const child of children) child.hidden = false;
  const limit = list.clientHeight;
  if (!limit) return;
  const pad = parseFloat(getComputedStyle(list).paddingBottom) || 0;
  for (const child of children) {
    if (child.offsetTop + child.offsetHeight > limit - pad + 1) child.hidden = true;
  }
}
