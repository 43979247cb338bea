// Small DOM helpers shared by the page's views.

export const $ = (id) => document.getElementById(id);

/** Writes only on change, so live regions and screen readers are not re-announced. */
export function setText(node, text) {
  if (node.textContent !== text) {
    node.textContent = text;
  }
}

export function show(node, visible) {
  if (node.hidden === visible) {
    node.hidden = !visible;
  }
}
