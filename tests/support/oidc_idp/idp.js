// A real OIDC identity provider for winmdm's tests: npm oidc-provider on 127.0.0.1.
//
// Starts listening on a free port at once and prints "LISTENING <port>", so the caller knows the
// issuer before it knows the redirect URI (winmdm's URL is chosen when winmdm starts). It then
// reads one JSON line on stdin, builds the provider and prints "READY":
//   {"client_id", "client_secret", "redirect_uris": [...], "auth_method": "client_secret_basic",
//    "users": ["alice@corp.example", ...]}
// Development interactions are on (login form, then consent form); the login form accepts any
// name, so an unknown name ends the sign-in with access_denied (back to the client, as a real
// IdP's "no such user" would after its retries) and findAccount refuses it too.
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';

import Provider from 'oidc-provider';

let handler = (req, res) => {
  res.writeHead(503, { 'content-type': 'text/plain' });
  res.end('not configured yet');
};
const server = createServer((req, res) => handler(req, res));

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  process.stdout.write(`LISTENING ${port}\n`);
  createInterface({ input: process.stdin }).once('line', (line) => {
    const options = JSON.parse(line);
    const provider = build(`http://127.0.0.1:${port}`, options);
    handler = refuseUnknownUsers(provider, new Set(options.users));
    process.stdout.write('READY\n');
  });
});

function refuseUnknownUsers(provider, users) {
  const callback = provider.callback();
  return (req, res) => {
    if (req.method !== 'POST' || !req.url.startsWith('/interaction/')) return callback(req, res);
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', async () => {
      // oidc-provider reads an already-read body from req.body.
      req.body = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString()));
      if (req.body.prompt === 'login' && !users.has(req.body.login)) {
        try {
          await provider.interactionFinished(req, res, {
            error: 'access_denied',
            error_description: 'no such user',
          }, { mergeWithLastSubmission: false });
        } catch (err) {
          res.writeHead(400, { 'content-type': 'text/plain' });
          res.end(String(err));
        }
        return;
      }
      callback(req, res);
    });
  };
}

function build(issuer, options) {
  const users = new Set(options.users);
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key-1', use: 'sig', alg: 'RS256' };
  const method = options.auth_method || 'client_secret_basic';
  return new Provider(issuer, {
    clients: [{
      client_id: options.client_id,
      client_secret: options.client_secret,
      redirect_uris: options.redirect_uris,
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: method,
    }],
    clientAuthMethods: [method],
    jwks: { keys: [jwk] },
    cookies: { keys: ['winmdm-tests-only'] },
    scopes: ['openid', 'email', 'profile'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['preferred_username', 'name'] },
    features: { devInteractions: { enabled: true } },
    async findAccount(ctx, id) {
      if (!users.has(id)) return undefined;
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: id, email_verified: true, preferred_username: id, name: id.split('@')[0] };
        },
      };
    },
  });
}
