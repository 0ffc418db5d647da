// The page's icons: symbols of the SVG sprite static/chat/icons.svg (24x24 strokes in
// currentColor, so an icon takes the colour of its text). `icon("reply")` is decorative
// (aria-hidden: the button around it carries the label); `icon("reply", "Reply")` is an
// image with an accessible name.

// Beside this module, so the sprite follows STATIC_URL.
const SPRITE = new URL("./icons.svg", import.meta.url).pathname;
const SVG_NS = "http://www.w3.org/2000/svg";

/** An <svg class="icon"> showing the symbol `name` of the sprite. */
export function icon(name, label) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", `icon icon-${name}`);
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "20");
  svg.setAttribute("height", "20");
  svg.setAttribute("focusable", "false");
  if (label) {
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
  } else {
    svg.setAttribute("aria-hidden", "true");
  }
  const use = document.createElementNS(SVG_NS, "use");
  use.setAttribute("href", `${SPRITE}#${name}`);
  svg.append(use);
  return svg;
}
