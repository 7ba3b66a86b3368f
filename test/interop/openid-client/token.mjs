// Obtains a client_credentials token from a certbound authorization server
// with openid-client, authenticating with tls_client_auth at the mTLS
// endpoint alias advertised in the RFC 8414 metadata (RFC 8705 §5).
// Inputs come from the environment; the token response is printed as JSON.
import { readFileSync } from 'node:fs'
import * as client from 'openid-client'
import { Agent, fetch } from 'undici'

const env = (name) => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}

const ca = readFileSync(env('CERTBOUND_CA_FILE'))
const withClientCert = new Agent({
  connect: { ca, cert: readFileSync(env('CERTBOUND_CERT_FILE')), key: readFileSync(env('CERTBOUND_KEY_FILE')) },
})
// Every request (metadata, token) presents the client certificate; the
// conventional listener simply does not ask for it.
const mtlsFetch = (url, options) => fetch(url, { ...options, dispatcher: withClientCert })

const config = await client.discovery(
  new URL(env('CERTBOUND_ISSUER')),
  env('CERTBOUND_CLIENT_ID'),
  { use_mtls_endpoint_aliases: true },
  client.TlsClientAuth(),
  { algorithm: 'oauth2', [client.customFetch]: mtlsFetch },
)
config[client.customFetch] = mtlsFetch

const tokens = await client.clientCredentialsGrant(config, { scope: process.env.CERTBOUND_SCOPE ?? '' })
process.stdout.write(JSON.stringify({
  token_endpoint: config.serverMetadata().mtls_endpoint_aliases?.token_endpoint,
  access_token: tokens.access_token,
  token_type: tokens.token_type,
  expires_in: tokens.expires_in,
  scope: tokens.scope,
}))
