"""The voice service: text to speech with espeak-ng (a separate program) and Piper voices on
onnxruntime."""
