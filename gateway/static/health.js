// The connection dots of the top bar and the banner under it.

import { $ } from "./util.js";

const banners = new Map();
export function showBanner(key, text) {
  banners.set(key, text);
  const b = $("banner");
  b.textContent = [...banners.values()].join("  ·  ");
  b.hidden = false;
}
export function hideBanner(key) {
  banners.delete(key);
  const b = $("banner");
  if (banners.size) b.textContent = [...banners.values()].join("  ·  ");
  else b.hidden = true;
}

export function setHealth(which, level, label) {
  $(`${which}-dot`).className = `dot ${level}`;
  $(`${which}-state`).textContent = label;
}
