"""lanai's inference services: one package per modality (engines free of gRPC code, a thin
servicer, a registry entry), on the shared core in lanai.services.core."""
