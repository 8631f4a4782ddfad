"""`lanai batch`: push a folder of files (or a file of prompts) through the mesh with bounded
concurrency, one JSON line per input as it completes, resumable, with bounded retries."""
