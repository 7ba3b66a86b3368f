// A zero-Secret workload with openid-client (RFC 8705 §4 public client):
// exchanges a Kubernetes service account token for a certificate-bound
// access token (RFC 8693) at the mTLS endpoint alias, presenting a
// self-signed certificate, then refreshes it over the same certificate.
// Inputs come from the environment; both token responses are printed as
// JSON.
import { readFileSync } from 'node:fs'
import * as client from 'openid-client'
import { Agent, fetch } from 'undici'

const env = (name) => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}

const withClientCert = new Agent({
  connect: {
    ca: readFileSync(env('CERTBOUND_CA_FILE')),
    cert: readFileSync(env('CERTBOUND_CERT_FILE')),
    key: readFileSync(env('CERTBOUND_KEY_FILE')),
  },
})
const mtlsFetch = (url, options) => fetch(url, { ...options, dispatcher: withClientCert })

// A public client: no client authentication (token_endpoint_auth_method
// none); the certificate only binds the tokens.
const config = await client.discovery(
  new URL(env('CERTBOUND_ISSUER')),
  env('CERTBOUND_CLIENT_ID'),
  { use_mtls_endpoint_aliases: true },
  client.None(),
  { algorithm: 'oauth2', [client.customFetch]: mtlsFetch },
)
config[client.customFetch] = mtlsFetch

const exchanged = await client.genericGrantRequest(config, 'urn:ietf:params:oauth:grant-type:token-exchange', {
  subject_token: readFileSync(env('CERTBOUND_SUBJECT_TOKEN_FILE'), 'utf8').trim(),
  subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
  requested_token_type: 'urn:ietf:params:oauth:token-type:access_token',
  scope: env('CERTBOUND_SCOPE'),
})
const refreshed = await client.refreshTokenGrant(config, exchanged.refresh_token)
const fields = (t) => ({
  access_token: t.access_token,
  issued_token_type: t.issued_token_type,
  token_type: t.token_type,
  expires_in: t.expires_in,
  scope: t.scope,
  refresh_token: t.refresh_token,
})
process.stdout.write(JSON.stringify({
  token_endpoint: config.serverMetadata().mtls_endpoint_aliases?.token_endpoint,
  exchanged: fields(exchanged),
  refreshed: fields(refreshed),
}))
