// The rule for a URL the page puts in href, src or poster, the same as flowboard/safe_url.py:
// an http(s) URL with a host, or a path under this server's /media/. The service refuses
// anything else on writes; a record stored before that rule may still hold one.

const FORBIDDEN = /[\x00-\x20\x7f\\]/;
const ABSOLUTE = /^https?:\/\/(?:[^/?#@]*@)?[^/?#@]+/i;
const MEDIA_PREFIX = "/media/";

/** Why the URL may not be rendered, or null when it may. */
export function urlProblem(url) {
  if (typeof url !== "string") return "not a string";
  if (FORBIDDEN.test(url)) return "holds whitespace, a control character or a backslash";
  if (url.startsWith(MEDIA_PREFIX)) {
    const segments = url.split(/[?#]/, 1)[0].replace(/%2e/gi, ".").split("/");
    return segments.includes(".") || segments.includes("..") ? "leaves /media/" : null;
  }
  return ABSOLUTE.test(url) ? null : "not an http(s) URL nor a path under /media/";
}

/** The URL when it passes the rule, else null. */
export function safeUrl(url) {
  return urlProblem(url) === null ? url : null;
}
