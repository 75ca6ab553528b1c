// The API token of this tab: kept in sessionStorage (gone with the tab), never in a URL.

const KEY = "flowboard.token";

export function token() {
  return sessionStorage.getItem(KEY);
}

export function signIn(value) {
  sessionStorage.setItem(KEY, value.trim());
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}
