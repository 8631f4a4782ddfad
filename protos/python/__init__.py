"""Generated gRPC stubs of the lanai protos (see protos/lanai)."""
