"""models — getting a model ready to answer: from where, on what, with what.

Owns: where a model (or adapter) is read from and whether it can be
(``sources``), its weights' fingerprint, folder and parameter count without
loading (``weights``), PEFT adapters (``adapters``), checks before any weights
load (``preflight``), backend / dtype / device / GPU placement (``placement``:
PlacementRequest -> ExecutionPlan), loading and one side's handle (``loading``:
ModelSpec, load_model, ModelHandle) and a
model split across GPUs in its own processes (``tensor_parallel``). A loaded
model answers through ``lmeval.harness``. torch, transformers and DeepSpeed are
imported only inside functions. Import from the modules; nothing is re-exported here.
"""
