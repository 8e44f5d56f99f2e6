// The service worker: keeps the app shell so the portal opens without a
// network. scripts/build-app fills in VERSION (a hash of the shell) and
// FILES (the built files); a new build is a new cache, and the old one is
// removed once the new worker takes over. Records are not cached here: they
// live in IndexedDB, written by the app.
const VERSION = "__VERSION__";
const FILES = "__FILES__";
const CACHE = `portal-shell-${VERSION}`;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE)
      .then((cache) => cache.addAll(FILES.map((f) => new Request(f, { cache: "reload" }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("portal-shell-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

const offline = () =>
  new Response(JSON.stringify({ error: "offline" }), { status: 503, headers: { "Content-Type": "application/json" } });

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  // The API always goes to the network; offline it answers 503 "offline".
  if (url.pathname.startsWith("/api/")) {
    event.respondWith(fetch(request).catch(offline));
    return;
  }
  if (url.pathname === "/sync" || url.pathname === "/healthz") return;
  // Pages (any path: the app routes in memory) get the cached index.html, so
  // the shell and its scripts always come from the same build.
  const key = request.mode === "navigate" ? "/index.html" : url.pathname;
  event.respondWith(
    caches.open(CACHE).then((cache) =>
      cache.match(key).then((hit) => hit || fetch(request)),
    ),
  );
});
