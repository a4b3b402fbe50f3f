// The kit's service worker (served at /kit/sw.js, scope /kit/; VERSION and ASSETS are written
// above by the hub from the files' bytes). It keeps the shell and its scripts for offline use,
// cache first; a new version (a changed file) installs a new cache and drops the old one. It
// never touches the API: sync and enrolment always go to the network (and their answers are
// never cached — they carry personal data and tokens).
const CACHE = `kit-${VERSION}`;

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(ASSETS)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith('kit-') && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin || !ASSETS.includes(url.pathname)) return;
  event.respondWith(
    caches.open(CACHE).then((cache) => cache.match(url.pathname)).then((hit) => hit || fetch(event.request)),
  );
});
