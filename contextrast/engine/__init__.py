"""Engine: trainer, evaluation (metrics, test-time inference) and checkpoint IO (safetensors + JSON card).

  trainer.py           the training loop (`train`)
  evaluate.py          mIoU / boundary IoU over a dataset; metrics.py the confusion matrix and boundary IoU
  inference.py         test-time forward passes (sliding window, device choice)
  checkpoint.py        model checkpoints: `save_checkpoint`, `load_checkpoint`
  card.py              the model card (`ModelCard`, `read_card`) and its generated README
  training_state.py    what resume needs: optimizer, grad scaler, RNG (`save_training_state`, …)
  atomic.py            directories written atomically; checkpoint_files.py the files they hold
  provenance.py        code version and hardware strings for cards and benchmarks

Modules are imported by their users (`from contextrast.engine.checkpoint import load_checkpoint`), so that
importing one part never pulls in the others.
"""
