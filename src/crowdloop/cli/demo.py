"""The product-categorization demo: ``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crowdloop.cli.common import app, console, run

Out = Annotated[Path, typer.Option("--plot", help="Where to write the PNG of accuracy against cost per item.")]


@app.command()
def demo(
    plot: Out = Path("crowdloop-demo.png"),
    target: Annotated[float, typer.Option(help="Target confidence of the dynamic policies.")] = 0.97,
    max_overlap: Annotated[int, typer.Option(help="Human answers after which an item goes to an expert.")] = 5,
    threshold: Annotated[float, typer.Option(help="Model confidence of the '1 human + model' preset.")] = 0.8,
    seeds: Annotated[int, typer.Option(help="Simulated crowds to average over (intervals need 2 or more).")] = 1,
    expert_price: Annotated[float, typer.Option(help="Price of an expert review, in crowd answers.")] = 10.0,
    products_used: Annotated[
        int | None, typer.Option("--products", help="Use a random sample of this many of the shipped products.")
    ] = None,
    service: Annotated[
        bool,
        typer.Option(
            "--service",
            help="Run the loop through the HTTP API of a real server instead (a short version: 800 products), "
            "its model worker training while a simulated crowd works.",
        ),
    ] = False,
) -> None:
    """Categorize ~3,000 real product titles with a simulated crowd and a text model; compare five policies.

    Uses the Flipkart product sample shipped with crowdloop (CC BY-SA 4.0), a synthetic crowd of
    experts, good and sloppy annotators, spammers and a colluding ring (wrong answers mostly sibling
    categories), and the default text classifier's out-of-fold probabilities as the model's vote.
    Prints accuracy, paid human answers, cost, escalations and the share of products that needed a
    single human answer per policy, and writes a plot of accuracy against cost per item.

    With ``--service``: starts ``crowdloop serve`` on a temporary database, creates the project
    through the API and lets the simulated crowd and an expert reviewer work until every product is
    settled, while the server's worker trains the model, votes with it and labels the products it
    is sure of; prints what it cost and how much the model labelled (``bench/bench_loop.py`` is the
    full version)."""
    if service:
        run(lambda: _service_demo(products_used or 800, target, seeds))
        return
    from crowdloop.consensus import ConsensusPolicy, Prices
    from crowdloop.errors import ConfigError
    from crowdloop.labels import Taxonomy
    from crowdloop.simulation.plot import INSTALL_HINT, plot_accuracy_cost, plot_available
    from crowdloop.simulation.products import (
        ProductSetup,
        compare_policies,
        model_probabilities,
        product_notice,
        product_sample,
    )

    def job() -> None:
        policy = ConsensusPolicy(target, 1, max_overlap, partial=False, prices=Prices(crowd=1.0, expert=expert_price))
        setup = ProductSetup(policy=policy, thresholds=(threshold,))
        products = product_sample()
        if products_used is not None:
            if not 100 <= products_used <= len(products):
                raise ConfigError(f"--products must be between 100 and {len(products):,}, got {products_used:,}")
            products = products.sample(products_used, random_state=0).reset_index(drop=True)
        taxonomy = Taxonomy.from_paths(sorted(products["category"].unique()))
        out = Console(width=max(Console().width, 100))
        out.print(f"{len(products):,} product titles in {len(taxonomy)} categories. {product_notice().splitlines()[0]}")
        with console.status("training the text model (out-of-fold probabilities) ..."):
            probs = model_probabilities(products["title"], products["category"], taxonomy)
        with console.status(f"simulating {seeds} crowd(s) of {setup.n_workers} annotators and five policies ..."):
            result = compare_policies(taxonomy, products["category"], probs, setup, seeds=range(seeds))
        summary = result.summary
        table = Table(title=f"Product categorization: target {target}, max overlap {max_overlap}")
        table.add_column("policy", no_wrap=True)
        for column in ("accuracy", "if expert", "answers", "cost", "escalated", "1 answer"):
            table.add_column(column, justify="right")
        for row in summary.itertuples():
            table.add_row(
                row.policy,
                _interval(row.accuracy, row.accuracy_lo, row.accuracy_hi),
                f"{row.accuracy_expert:.3f}",
                f"{row.answers_per_item:.2f}",
                f"{row.cost_per_item:.2f}",
                f"{row.escalation_rate:.1%}",
                f"{row.one_answer_share:.1%}",
            )
        out.print(table)
        out.print(
            f"Over the {len(products) - round(setup.gold_share * len(products)):,} products that are not honeypots "
            f"({setup.gold_share:.0%} with known labels). accuracy: final labels (escalated products keep the "
            "crowd's leading label); if expert: an expert labels the escalated ones; answers: paid human answers "
            f"per product; cost per product: crowd answers at 1, expert reviews at {expert_price:g}, model at 0; "
            "1 answer: share of products settled by a single human answer."
        )
        if not plot_available():
            console.print(f"[yellow]plot not written:[/] matplotlib is not installed ({escape(INSTALL_HINT)})")
            return
        written = plot_accuracy_cost(summary, plot, title=f"{len(products):,} products, target {target}")
        out.print(f"plot of accuracy against cost per item -> {written}")

    run(job)


def _service_demo(n: int, target: float, seeds: int) -> None:
    """The loop through the HTTP API on a temporary SQLite database (``--service``)."""
    import tempfile

    from crowdloop.errors import ConfigError
    from crowdloop.server.process import ServerProcess
    from crowdloop.server.simulated_crowd import LoopSetup, run_loop
    from crowdloop.simulation.products import product_notice, product_sample

    products = product_sample()
    if not 100 <= n <= len(products):
        raise ConfigError(f"--products must be between 100 and {len(products):,}, got {n:,}")
    products = products.sample(n, random_state=0).reset_index(drop=True)
    out = Console(width=max(Console().width, 100))
    out.print(f"{n:,} product titles. {product_notice().splitlines()[0]}")
    setup = LoopSetup(target=target, annotators=12, think_seconds=0.3)
    table = Table(title=f"The loop through the HTTP API: target {target}, overlap 1-3, 10% gold")
    for column in ("seed", "accuracy", "answers/item", "escalated", "automated", "automated right", "cost/item",
                   "answers/s", "p99 ms", "model versions"):  # fmt: skip
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory(prefix="crowdloop-demo-") as folder:
        for seed in range(seeds):
            status = f"seed {seed}: a server, its model worker and {setup.annotators} annotators ..."
            with console.status(status), ServerProcess(f"sqlite:///{folder}/demo-{seed}.db") as server:
                titles, paths = products["title"].tolist(), products["category"].tolist()
                f = run_loop(server.base_url, server.admin_token, titles, paths, setup, seed).figures
            table.add_row(str(seed), f"{f['accuracy']:.3f}", f"{f['answers_per_item']:.2f}", f"{f['escalated']:.1%}",
                          f"{f['automated']:.1%}", "-" if f["automated_accuracy"] != f["automated_accuracy"]
                          else f"{f['automated_accuracy']:.3f}", f"{f['cost_per_item']:.2f}",
                          f"{f['answers_per_second']:.1f}", f"{f['p99_ms']:.0f}", f"{f['versions']:.0f}")  # fmt: skip
    out.print(table)
    out.print(
        "accuracy: settled products that are not gold; answers/item: paid human answers (gold included) per "
        "product; escalated: settled by the reviewer; automated: labelled by the model with no human answer "
        "(and the share of those right); cost: crowd answer 1, review 10."
    )


def _interval(mean: float, lo: float, hi: float) -> str:
    return f"{mean:.3f}" if lo != lo else f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"
