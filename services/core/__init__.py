"""The small core every lanai service builds on, and the only lanai code a service imports
besides its own modules and the generated API: domain errors (errors), admission control and
timing (admission), the hosted-service base and the registry entry (hosted, entry), config
fields that are also command-line flags (options), shared metrics (metrics) and protobuf
helpers (wire). lanai.mesh imports this; this never imports lanai.mesh."""
