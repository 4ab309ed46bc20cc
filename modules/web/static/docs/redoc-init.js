// Starts ReDoc from a file (no inline script under the page's Content-Security-Policy).
// Telemetry is off, and the page makes no request beyond this app: ReDoc 3 shows its maker's
// logo from a CDN, which the policy would block (a console error), so that one image URL is
// pointed at nothing before ReDoc renders; ReDoc then drops the image ("API docs by" stays).
import { init } from "/static/vendor/redoc/redoc.standalone.js";

const REMOTE = "https://cdn.redoc.ly/";
const local = (value) => (String(value).startsWith(REMOTE) ? "data:," : value);
const src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
Object.defineProperty(HTMLImageElement.prototype, "src", {
  ...src,
  set(value) {
    src.set.call(this, local(value));
  },
});
const setAttribute = Element.prototype.setAttribute;
Element.prototype.setAttribute = function (name, value) {
  const isImageSrc = this instanceof HTMLImageElement && name.toLowerCase() === "src";
  return setAttribute.call(this, name, isImageSrc ? local(value) : value);
};

const url = document.querySelector('meta[name="openapi-url"]').content;
init(url, { disableTelemetry: true }, document.getElementById("redoc"));
