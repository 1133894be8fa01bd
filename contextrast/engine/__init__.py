"""Engine: trainer, evaluation (metrics, test-time inference) and checkpoint IO (safetensors + JSON card).

Modules are imported by their users (`from contextrast.engine.checkpoint import load_checkpoint`), so that
importing one part never pulls in the others.
"""
