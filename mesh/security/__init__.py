"""Mesh trust: the mesh CA, joining, mTLS between members, revocation and client API keys.

Keys and certificates come from `cryptography`; TLS is grpcio's own. Nothing here implements
a cipher, a signature scheme or a handshake."""
