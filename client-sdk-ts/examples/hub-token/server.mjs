// The token route of an application's own backend, for a page whose SDK is
// `new Hubbub({ url, getToken: () => fetch('/api/hub-token').then((r) => r.text()) })`.
// It signs a short-lived HS256 JWT with the hub's `auth.jwt_secret` (kept on
// the server, never sent to the browser) using `jose`, for the user the app
// already authenticated: bookings of hotel 42 and the user's personal topic
// (`users:{sub}`: the hub puts the token's `sub` in place of `{sub}`).
//
//   HUB_JWT_SECRET=… node examples/hub-token/server.mjs   # listens on PORT (default 3000)
import { createServer } from 'node:http';
import { SignJWT } from 'jose';

/** Mints the hub token for `userId`. */
export async function hubToken(secret, userId) {
  return new SignJWT({ subscribe: ['bookings:42', 'users:{sub}'] })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime('15m') // the SDK calls the route again before it expires
    .sign(new TextEncoder().encode(secret));
}

/** The app's HTTP handler: `GET /api/hub-token` for a signed-in user. */
export function handler(secret, currentUser) {
  return async (req, res) => {
    if (req.method !== 'GET' || req.url !== '/api/hub-token') {
      res.writeHead(404).end();
      return;
    }
    const user = currentUser(req); // your session check
    if (!user) {
      res.writeHead(401).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end(await hubToken(secret, user));
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const secret = process.env.HUB_JWT_SECRET;
  if (!secret) throw new Error('set HUB_JWT_SECRET to the hub\'s auth.jwt_secret');
  // Stand-in for the app's session: the user named in an `x-user` header.
  const server = createServer(handler(secret, (req) => req.headers['x-user']));
  server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
}
