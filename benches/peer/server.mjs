// node-oidc-provider configured like Latchkey, as the peer that benches/flows.rs measures with
// BENCH_BACKEND=node: RS256 ID tokens, ES256 JWT access tokens (RFC 9068), PKCE (S256) required,
// refresh tokens rotated on every use, client_credentials, the library's in-memory adapter.
//
// Usage: node benches/peer/server.mjs PORT (or PEER_PORT). The bench passes the clients' ids and
// secrets and the users' password in the environment (PEER_*), and waits for the line `ready`.
//
// Sign-in is a stub, because the bench never measures it on this peer: POST
// /interaction/:uid/login with `email` and `password` checks the password by plain comparison
// (no password hashing), grants what was asked and finishes the interaction, so the next
// /authorize with the session cookie answers with a code at once.

import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider, { errors } from 'oidc-provider';

const port = Number(process.argv[2] || process.env.PEER_PORT || 3000);
const issuer = `http://127.0.0.1:${port}`;
// The API that access tokens are for (Latchkey's equivalent is its default audience).
const resource = `${issuer}/api`;
const env = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`server.mjs: ${name} is not set`);
    process.exit(2);
  }
  return value;
};
const password = env('PEER_PASSWORD');

// One key per algorithm, made at start (Latchkey makes its keys at start too).
const jwk = (type, options, alg, kid) => ({
  ...generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' }),
  alg,
  kid,
  use: 'sig',
});
const jwks = {
  keys: [
    jwk('rsa', { modulusLength: 2048 }, 'RS256', 'rs256-1'),
    jwk('ec', { namedCurve: 'P-256' }, 'ES256', 'es256-1'),
  ],
};

// The bench's users are user<N>@bench.example, all with the same password.
const accounts = new Map(); // sub → { email, name }
const subFor = (email) => createHash('sha256').update(email).digest('base64url').slice(0, 22);

async function findAccount(_ctx, sub) {
  const account = accounts.get(sub);
  if (!account) return undefined;
  return {
    accountId: sub,
    async claims() {
      return { sub, email: account.email, email_verified: true, name: account.name };
    },
  };
}

// Latchkey's default lifetimes (src/config.rs), so neither side keeps less than the other.
const ttl = {
  AccessToken: 15 * 60,
  AuthorizationCode: 60,
  ClientCredentials: 15 * 60,
  IdToken: 15 * 60,
  Interaction: 60 * 60,
  RefreshToken: 14 * 86400,
  Session: 8 * 3600,
  Grant: 14 * 86400,
};

const provider = new Provider(issuer, {
  clients: [
    {
      // The bench web app: confidential, client_secret_basic, as the Latchkey bench registers it.
      client_id: env('PEER_APP_ID'),
      client_secret: env('PEER_APP_SECRET'),
      redirect_uris: ['http://127.0.0.1:9/callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    {
      // The bench service: client_credentials only.
      client_id: env('PEER_SERVICE_ID'),
      client_secret: env('PEER_SERVICE_SECRET'),
      redirect_uris: [],
      grant_types: ['client_credentials'],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks,
  findAccount,
  ttl,
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  // Latchkey's path, so the bench's driver builds the same URL for both.
  routes: { authorization: '/authorize' },
  pkce: { required: () => true },
  rotateRefreshToken: true,
  // The default issues one only for offline_access, which the library drops from a request
  // without prompt=consent; Latchkey issues one to every client allowed the refresh grant.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Every token request is for the API without the client naming it (as with Latchkey).
      defaultResource: async () => resource,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, indicator) => {
        if (indicator !== resource) throw new errors.InvalidTarget();
        return {
          scope: 'read',
          accessTokenTTL: ttl.AccessToken,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
});

provider.on('server_error', (_ctx, err) => console.error('server_error', err));

async function formBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// The sign-in stub (see the top of this file). Runs before the provider's own routes.
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([^/]+)\/login$/.exec(ctx.path);
  if (!match || ctx.method !== 'POST') return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== match[1]) ctx.throw(400, 'interaction mismatch');
  const form = await formBody(ctx.req);
  const email = form.get('email') ?? '';
  if (!/^user\d+@bench\.example$/.test(email) || form.get('password') !== password) {
    ctx.throw(401, 'sign-in refused');
  }
  const accountId = subFor(email);
  accounts.set(accountId, { email, name: email.split('@')[0] });

  // Consent granted at once for what the request asked: its OpenID scopes and the API.
  const { params } = details;
  const grant = new provider.Grant({ accountId, clientId: params.client_id });
  if (params.scope) grant.addOIDCScope(params.scope);
  grant.addResourceScope(resource, 'read');
  const grantId = await grant.save();
  const returnTo = await provider.interactionResult(
    ctx.req,
    ctx.res,
    { login: { accountId, amr: ['pwd'] }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
  ctx.status = 303;
  ctx.redirect(returnTo);
});

const server = provider.listen(port, '127.0.0.1', () => console.log('ready'));
// Longer than the bench's pauses, so an idle pooled connection is not closed under a request.
server.keepAliveTimeout = 75_000;
server.headersTimeout = 80_000;
process.on('SIGTERM', () => process.exit(0));
