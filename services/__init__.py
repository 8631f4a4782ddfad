"""lanai's inference services: one package per modality, engines free of gRPC code."""
