"""One module per pipeline stage: open stages/<stage>.py to see what stage X reads, computes and writes.

Each module holds, top to bottom: a docstring naming what the stage reads and writes and which core module does
the work; `DVC_STAGES` (the dvc.yaml stages that run its command); `OUTPUTS` (stages/outputs.py: the default of
every path it writes, as dvc.yaml passes them, and the files inside its folders; the report reads the same
names); a pure `run(...)` (inputs in, a result out: no file written, nothing logged); and the Typer command,
which parses, calls `run`, writes the files and logs the MLflow run.

  dvc.yaml stage                  module              core
  prepare, control-data           prepare.py          data/prepare.py (+ synth.py: the benchmark)
  train-emotion                   train_emotion.py    training/recipes.py
  train-pain                      train_pain.py       training/recipes.py
  retrain-emotion                 retrain_emotion.py  training/recipes.py
  train-control[-seed|-negative]  train_control.py    training/recipes.py
  forgetting                      forgetting.py       analysis/forgetting.py
  cka                             cka.py              analysis/cka.py
  necessity                       necessity.py        analysis/necessity.py
  saliency                        saliency.py         analysis/saliency.py, explain/
  concepts                        concepts.py         concepts/
  mask                            mask.py             masking/
  train-trainee                   train_trainee.py    masking/trainee.py
  trainee-report                  trainee_report.py   analysis/trainee.py
  attention-study                 attention_study.py  analysis/attention.py
  units                           units.py            analysis/units.py
  controls                        controls.py         analysis/controls.py
  report                          report.py           report/

Shared: _training.py (what the training commands write), outputs.py (OUTPUTS), ../names.py (model names).
"""

# The stage modules register their commands on the app of facetransfer.cli, whose package imports every stage
# module: importing it first lets a stage module be imported on its own (a test, a script) without a cycle.
import facetransfer.cli  # noqa: E402, F401
