"""Stage `report`: the whole study in one self-contained HTML page, and as Markdown in docs/results.md.

Reads   every stage's outputs, found through its OUTPUTS (facetransfer/stages/<stage>.py) under the pipeline's
        metrics/, reports/, saliency/ and masked/ folders
Writes  OUTPUTS: report/index.html, docs/results.md (in git: the committed run's numbers, never typed by hand)
Core    facetransfer.report.study (the sections), report.html and report.markdown (the two formats)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facetransfer import tracking
from facetransfer.cli.app import ParamsOption, app, user_errors
from facetransfer.config import load_section
from facetransfer.fsutil import check_outputs, write_text_atomic
from facetransfer.stages.outputs import Outputs

DVC_STAGES = ("report",)
OUTPUTS = Outputs({"out": "report/index.html", "results": "docs/results.md", "run_id": "runs/report.json"})


def run(cfg, paths, params_text: str, provenance: dict[str, str],
        results: Path | None) -> tuple[str, str | None, list[str]]:
    """(the HTML page, the Markdown page or None, the inputs not found)."""
    from facetransfer.report.markdown import Markdown
    from facetransfer.report.study import build_report

    page, missing = build_report(paths, cfg, params_text, provenance)
    markdown = (build_report(paths, cfg, params_text, provenance, Markdown(results.parent))[0]
                if results is not None else None)
    return page, markdown, missing


@app.command()
def report(
    out: Annotated[Path, typer.Option(help="The HTML file to write (report/index.html).")],
    run_id: Annotated[Path, typer.Option(help="Small JSON with the MLflow run id.")],
    metrics: Annotated[Path, typer.Option(help="The pipeline's metrics/ folder.")] = Path("metrics"),
    reports: Annotated[Path, typer.Option(help="The pipeline's reports/ folder (forgetting, concepts, trainee "
                                               "figures).")] = Path("reports"),
    saliency: Annotated[Path, typer.Option(help="The saliency stage's folder (au_ranking.json, "
                                                "grids/).")] = Path("saliency"),
    masked: Annotated[Path, typer.Option(help="The mask stage's folder (<method>/sample.png).")] = Path("masked"),
    results: Annotated[Path | None, typer.Option(help="Also write the report as Markdown here (docs/results.md): "
                                                      "tables in the text, figures linked.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """One offline HTML page with every table and figure of the study (Table 1, Fig. 3 and 6, McNemar, concept
    tests, saliency grids and AU ranking, localisation, RBDM curves) and the params and data hash it came from.
    Inputs that are missing are named on the page and here; figures are embedded, nothing is fetched."""
    from facetransfer.report.study import StudyPaths

    with user_errors():
        check_outputs(files=[out, run_id] + ([results] if results is not None else []))  # before any work
        cfg = load_section(params, "report")
        tags = tracking.run_tags("report", Path.cwd())
        provenance = {"git commit": tags["git_commit"], "uncommitted changes": tags["git_dirty"],
                      "data.dvc md5": tags["data_dvc_md5"], "sweep": tags["sweep"]}
        paths = StudyPaths(metrics, reports, saliency, masked)
        page, markdown, missing = run(cfg, paths, params.read_text(), provenance, results)
        write_text_atomic(out, page)
        if results is not None:
            write_text_atomic(results, markdown)
        with tracking.start_run("facetransfer", "report", params=cfg.model_dump(mode="json"), tags=tags) as logged:
            logged.log_artifact(out)
            tracking.write_run_id(run_id, logged.run_id)
    for path in missing:
        typer.echo(f"report: missing {path} (its section says so)", err=True)
    typer.echo(f"report: {out} ({out.stat().st_size / 1e6:.1f} MB)")
