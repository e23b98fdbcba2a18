r"""What the decision learns from all the answers: skills, the model's temperatures and floor, the calibrator.

``fit_decision`` is the fit behind every decision: ``crowdloop decide`` (``DynamicConsensus``),
the replay and the labeling service's periodic refit (``refit``, on arrays the service read).

**Skills** (one-coin Dawid-Skene, Dawid & Skene 1979, with a Beta prior; Karger, Oh & Shah 2011
for the one-coin model). Worker $w$ is right with probability $s_w \sim \mathrm{Beta}(m\mu,
m(1-\mu))$ (``SkillRules.prior_strength`` $m$). EM alternates the posterior of every item
(``Decider.posterior``, the very scorer the decision uses) and the posterior mean
$s_w = (m\mu + \sum_j r_j) / (m + n_w)$, where $r_j$ is the posterior probability that answer $j$
is right (on a gold item: its credit against the gold label) and the sums run over the answers
on gold items and on items with at least two answers. An item answered once carries no evidence
about its annotator (the posterior would merely echo the skill it started from), so a crowd that
answered every item once keeps the prior: one answer is worth what the prior says, never
certainty.

**Where wrong answers land** (a taxonomy; ``consensus.wrong_answers``): the same EM learns the
share $\rho$ of wrong answers that name a sibling of the truth, $\rho = (1 + \sum_j w^{sib}_j) /
(2 + \sum_j (1 - r_j))$ over the counted answers whose label has siblings, $w^{sib}_j$ the
posterior probability that answer $j$ is wrong and names a sibling of the truth (on a gold item:
whether it does). A flat label space keeps one-coin's even spread.

**How right answers are worded** (a taxonomy; ``consensus.vague_answers``): the same EM learns the
share $v$ of right answers about a truth with ancestors that name one of the ancestors,
$v = (1 + \sum_j w^{anc}_j) / (2 + \sum_j w^{deep}_j)$, $w^{deep}_j$ the posterior probability that
answer $j$ is right about a truth with ancestors and $w^{anc}_j$ that it also names one of them.

**The prior mean** $\mu$ (empirical Bayes): the stated ``ConsensusPolicy.prior_accuracy``, moved
by the crowd's agreement when items have two or more answers. With one-coin errors spread over
the $K - 1$ other labels, two answers on an item agree with probability
$A = \mu^2 + (1 - \mu)^2 / (K - 1)$; solving for the observed rate $\hat A$ (all pairs of answers
on the same item, Laplace-smoothed) gives
$\hat\mu_A = \big(1 + \sqrt{1 - K + \hat A K (K - 1)}\big) / K$, and
$\mu = (N_2 \hat\mu_A + m \mu_0) / (N_2 + m)$ over the $N_2$ items with two or more answers.

**Temperatures**: a model's probability rows vote with the temperature ``em.SoftVotes`` learns
for them (cross-entropy against the posterior of the human answers, gold clamped).

**The model's floor** (``fit_model_floor``): every model row is mixed with the uniform,
$(1 - \epsilon) p + \epsilon / K$, by the $\epsilon$ that makes the true labels of the gold and of
the items a reviewer settled most likely given their answers and rows; the reviewed items are
where a confident model and the people disagreed, which the gold, a random sample, rarely shows.

**Calibrator**: a ``TopLabelCalibrator`` fitted on the *prefix states* of the gold items (the item
after its first 1, 2, ... answers, as the stopping rule sees it, and with the model's vote alone
when a model voted), each scored with skills fitted
while its half of the gold was hidden (two-fold cross-fitting), so that a calibrated 0.97 at the
moment of acceptance means 97% right. It keeps one curve per answer count the gold covers
(``per_answer_count``): the one-coin posterior is overconfident after a few answers and about
honest after many, which a single curve pools into one top step (on a sentiment crowd with 20
answers per task, .934 for every state, so no task could ever reach .95).
"""

from __future__ import annotations

import contextlib
import zlib
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import minimize_scalar
from scipy.special import expit

from crowdloop.aggregation.base import Gold
from crowdloop.aggregation.calibration import TopLabelCalibrator
from crowdloop.aggregation.em import EPS, SoftVotes
from crowdloop.aggregation.posterior import CandidatePosterior
from crowdloop.answers import Answers, SoftAnswers
from crowdloop.consensus.decider import CAUTION, Decider, Opinions, opinions_of, runs
from crowdloop.consensus.policy import ConsensusPolicy
from crowdloop.consensus.routing import BranchSkills
from crowdloop.consensus.skills import SkillRules
from crowdloop.consensus.wrong_answers import WrongAnswers
from crowdloop.errors import InputError
from crowdloop.labels import LabelSpace, Taxonomy

SkillSource = Literal["em", "gold"]
MIN_CALIBRATION_STATES = 100
"""Gold prefix states needed before the decision is calibrated; fewer, or states at a single answer
count, leave it on the raw posterior."""
SKILL_MODEL = "one-coin"
SIBLING_SHARE_START = 0.5
"""Where EM starts the share of wrong answers that name a sibling of the truth (``WrongAnswers``)."""
CONFLICT_COLUMNS = ("item", "label", "prob", "temperature")
"""A conflict row (``StoredAnswers.conflicts``): an item, one of its row's labels, its probability
and the temperature its version voted with."""
MODEL_FLOOR_BOUNDS = (1e-6, 0.5)
"""The floor of the model's rows a fit may choose (``fit_model_floor``)."""
VAGUE_SHARE_START = 0.5
"""Where EM starts the share of right answers that name an ancestor of the truth (``VagueAnswers``)."""


@dataclass(frozen=True)
class DecisionModel:
    """A fitted decision: per worker code ``skill`` (posterior mean) from ``right`` of ``total``
    counted answers, ``temperatures`` (per worker code; 1 for humans), the ``calibrator`` (None:
    raw posterior), the ``typical_skill`` (median over the workers who answered) and the
    ``skill_evidence`` behind it (``skill_evidence``), the prior mean
    ``prior`` and ``prior_source`` (how it was set), ``n_gold``, the ``sibling_share`` of wrong
    answers and the ``vague_share`` of right ones (a taxonomy; None: wrong answers land anywhere
    alike, ``WrongAnswers``; every label on a right answer's path alike, ``VagueAnswers``)."""

    skill: np.ndarray
    right: np.ndarray
    total: np.ndarray
    temperatures: np.ndarray
    calibrator: TopLabelCalibrator | None
    typical_skill: float
    skill_evidence: float
    prior: float
    prior_source: str
    n_gold: int
    sibling_share: float | None = None
    vague_share: float | None = None
    model_floor: float | None = None

    def decider(self, labels: LabelSpace, policy: ConsensusPolicy, caution: float | None = CAUTION) -> Decider:
        return Decider(
            labels, policy, typical_skill=self.typical_skill, skill_evidence=self.skill_evidence,
            calibrator=self.calibrator, caution=caution, sibling_share=self.sibling_share,
            vague_share=self.vague_share, model_floor=self.model_floor,
        )  # fmt: skip

    def opinions(self, answers: Answers) -> Opinions:
        """The opinions of ``answers`` weighed with these skills (unseen workers: the prior)."""
        return opinions_of(answers, self.skill, self.temperatures, unseen_skill=self.prior)

    def confidence_note(self) -> str:
        """How the confidence is estimated, in one line."""
        skills = f"skills from EM with a Beta prior of mean {self.prior:.2f} ({self.prior_source})"
        if self.calibrator is not None:
            return f"calibrated on {self.n_gold:,} gold tasks; {skills}"
        gold = "no gold" if not self.n_gold else f"too little gold ({self.n_gold:,} tasks) to calibrate"
        return f"model posterior, {gold}; {skills}"


def agreement_prior(answers: Answers, stated: float, strength: float) -> tuple[float, str]:
    """The prior mean accuracy (module docstring) and how it was set."""
    n = answers.answers_per_item()
    k = answers.n_labels
    multi = n >= 2
    n_multi = int(multi.sum())
    if not n_multi:
        return stated, f"stated {stated:.2f}: no task has two answers to learn from"
    keys, counts = np.unique(answers.item.astype(np.int64) * k + answers.label, return_counts=True)
    on_multi = multi[keys // k]
    agree = float((counts[on_multi] * (counts[on_multi] - 1)).sum())
    pairs = float((n[multi] * (n[multi] - 1)).sum())
    rate = (agree + 1) / (pairs + 2)
    learned = (1 + np.sqrt(max(1 - k + rate * k * (k - 1), 0.0))) / k if k > 1 else 1.0
    learned = float(np.clip(learned, 1.0 / max(k, 2), 1.0))
    mean = (n_multi * learned + strength * stated) / (n_multi + strength)
    return float(mean), f"learned from agreement on {n_multi:,} tasks with 2+ answers"


def skill_evidence(answers: Answers, gold: Gold, strength: float) -> float:
    """Observations of the crowd's accuracy behind the typical skill: the prior's ``strength`` plus
    every answered task that shows skill (two or more answers, or gold)."""
    n = answers.answers_per_item()
    shows = n >= 2
    shows[np.asarray(gold.items, dtype=np.int64)] |= n[np.asarray(gold.items, dtype=np.int64)] >= 1
    return float(strength + shows.sum())


def fit_skills(
    answers: Answers,
    gold: Gold,
    decider: Decider,
    prior: float,
    strength: float,
    temperatures: np.ndarray,
    *,
    reviewed: Gold | None = None,
    skills: SkillSource = "em",
    n_iter: int = 50,
    tol: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Decider]:
    """One-coin EM (module docstring): each worker's posterior mean skill, the expected right
    answers and counted answers behind it, and ``decider`` with the fitted sibling share (a
    taxonomy; ``WrongAnswers``). ``skills="gold"`` counts gold answers only.

    ``reviewed``: labels an expert gave items the decision escalated. They clamp their items
    (exact credit where answers are counted anyway) but add no answers to the evidence: an item
    escalated after one answer was escalated *because* that answer looked wrong, so counting it
    would bias its annotator's skill down."""
    truth = np.full(answers.n_items, -1, dtype=np.int64)
    truth[gold.items] = gold.labels
    counted = truth[answers.item] >= 0
    if reviewed is not None:
        truth[reviewed.items] = reviewed.labels
    if skills == "em":
        counted |= answers.answers_per_item()[answers.item] >= 2
    exact = counted & (truth[answers.item] >= 0)
    total = np.bincount(answers.worker[counted], minlength=answers.n_workers).astype(np.float64)
    credit = np.zeros(answers.n_answers)
    credit[exact] = answers.labels.credit(answers.label[exact], truth[answers.item[exact]])
    skill = np.full(answers.n_workers, prior)
    opinions = opinions_of(answers, skill, temperatures, unseen_skill=prior)
    free = counted & ~exact
    shaped = isinstance(answers.labels, Taxonomy) and counted.any()
    share, vague = SIBLING_SHARE_START, VAGUE_SHARE_START
    if shaped:
        estimated, gold_sibling, gold_wrong = _sibling_evidence(answers, decider.wrong_answers, counted, exact, credit,
                                                                truth)  # fmt: skip
        gold_vague, gold_could = _vague_evidence(answers, exact, truth)
        unknown = counted & ~exact
    for _ in range(n_iter if free.any() or shaped else 1):
        if shaped:
            decider = decider.with_shares(share, vague)
        if free.any() or shaped:
            opinions = replace(opinions, skill=skill[answers.worker])
            outcome = decider.answer_outcomes(opinions)
            credit[free] = outcome.right[free]
        right = np.bincount(answers.worker[counted], weights=credit[counted], minlength=answers.n_workers)
        new = (strength * prior + right) / (strength + total)
        done = np.abs(new - skill).max(initial=0.0) < tol
        skill = new
        if shaped:  # the M-steps of the two shares (module docstring), gold's part known exactly
            new_share = float((outcome.named_sibling[estimated].sum() + gold_sibling + 1.0)
                              / ((1 - credit[estimated]).sum() + gold_wrong + 2.0))  # fmt: skip
            new_vague = float((outcome.vague[unknown].sum() + gold_vague + 1.0)
                              / (outcome.right_about_deep[unknown].sum() + gold_could + 2.0))  # fmt: skip
            done &= max(abs(new_share - share), abs(new_vague - vague)) < tol
            share, vague = new_share, new_vague
        if done:
            break
    if shaped:
        decider = decider.with_shares(share, vague)
    return skill, right, total, decider


def _sibling_evidence(
    answers: Answers, shape: WrongAnswers, counted: np.ndarray, exact: np.ndarray, credit: np.ndarray, truth: np.ndarray
) -> tuple[np.ndarray, float, float]:
    """The answers that count for the sibling share (counted, and their label has siblings): those
    whose truth EM estimates, and on items whose truth is known the wrong ones that name a sibling
    of it and all the wrong ones (expected counts, partial credit as in the skills)."""
    could = counted & (shape.children[shape.parent[answers.label]] > 1)
    known = could & exact
    wrong = 1 - credit[known]
    sibling = shape.siblings(answers.label[known], truth[answers.item[known]])
    return could & ~exact, float((wrong * sibling).sum()), float(wrong.sum())


def _vague_evidence(answers: Answers, exact: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """On items whose truth is known, the counted answers that name a proper ancestor of a truth
    with ancestors, and those right about such a truth (the answer is it or an ancestor)."""
    labels = answers.labels
    answered, known = answers.label[exact], truth[answers.item[exact]]
    deep = labels.depth[known] > 1
    on_path = labels.lca_depth(answered, known) == labels.depth[answered]  # the truth or an ancestor of it
    could = deep & on_path & (labels.depth[answered] <= labels.depth[known])
    return float((could & (answered != known)).sum()), float(could.sum())


def fit_decision(
    answers: Answers,
    gold: Gold,
    policy: ConsensusPolicy,
    rules: SkillRules | None = None,
    *,
    reviewed: Gold | None = None,
    conflicts: pd.DataFrame | None = None,
    skills: SkillSource = "em",
    calibrate: bool = True,
    caution: float | None = CAUTION,
    random_state: int = 0,
) -> DecisionModel:
    """Skills, temperatures and calibrator from ``answers`` with ``gold`` clamped (module docstring).

    ``reviewed``: the labels experts gave escalated items clamp their items for the skills
    (``fit_skills``) but are no sample of anything: the decision chose them because the crowd and
    the model disagreed on them, so the model's temperature and the calibrator, which estimate
    how often an opinion is right, learn from ``gold`` alone (a random sample of the items).
    ``conflicts``: for reviewed items, the model row that was voting when they were escalated
    (columns ``item``, a code of ``answers``, ``label``, ``prob``, ``temperature``); with the gold
    they set the floor of the model's rows (``fit_model_floor``)."""
    rules = rules or SkillRules()
    m = rules.prior_strength
    prior, source = agreement_prior(answers, policy.prior_accuracy, m)
    decider = Decider(answers.labels, policy, typical_skill=prior)
    temperatures = _temperatures(answers, gold, decider, prior)
    skill, right, total, fitted = fit_skills(
        answers, gold, decider, prior, m, temperatures, reviewed=reviewed, skills=skills
    )
    hard = np.bincount(answers.worker, minlength=answers.n_workers) > 0
    typical = float(np.median(skill[hard])) if hard.any() else prior
    floor = fit_model_floor(answers, gold, fitted, opinions_of(answers, skill, temperatures, unseen_skill=prior),
                            reviewed, conflicts, skill, prior)  # fmt: skip
    fitted = fitted.with_model_floor(floor)
    calibrator = None
    if calibrate and len(gold):
        calibrator = _calibrator(answers, gold, reviewed, policy, prior, m, temperatures, typical, skills, random_state,
                                 floor)  # fmt: skip
    evidence = skill_evidence(answers, gold, m)
    return DecisionModel(
        skill, right, total, temperatures, calibrator, typical, evidence, prior, source, len(gold),
        fitted.wrong_answers.sibling_share, fitted.vague_answers.share, floor,
    )  # fmt: skip


def fit_model_floor(
    answers: Answers,
    gold: Gold,
    decider: Decider,
    opinions: Opinions,
    reviewed: Gold | None,
    conflicts: pd.DataFrame | None,
    skill: np.ndarray,
    prior: float,
) -> float | None:
    r"""The floor $\epsilon$ of the model's rows, $(1 - \epsilon) p + \epsilon / K$ before they
    vote: the maximum of $\sum_i \log P(z_i \mid \text{answers}_i, \text{row}_i)$, the posterior of
    the true label given the item's human answers and model row, over the gold items with a row and
    the reviewed items with the row that voted when they were escalated (``conflicts``). Both are
    likelihoods of the truth given what was observed: the gold is a random sample, and the reviewed
    items were chosen by their answers and rows alone, which the likelihood conditions on, so their
    selection does not bias it. The gold alone cannot bound a text model's confident errors
    against a label people named (on the Flipkart sample through the API the label three
    annotators agreed on had 1e-7 in the row of a version sure of another convention of the data;
    its floor fitted on gold sat at 1e-6); the reviewed conflicts can. None: no model rows."""
    sets = []
    if answers.soft is not None and len(answers.soft) and len(gold):
        with_row = np.isin(gold.items, answers.soft.item)
        if with_row.any():
            sets.append((opinions, gold.items[with_row], gold.labels[with_row]))
    if conflicts is not None and len(conflicts) and reviewed is not None and len(reviewed.items):
        sets.append(_conflict_opinions(answers, reviewed, conflicts, skill, prior))
    if not sets:
        return None
    k = len(answers.labels)

    def loss(logit: float) -> float:
        shaped = decider.with_model_floor(float(expit(logit)))
        return -sum(float(_truth_log_prob(shaped.posterior(o), items, truth, k).sum()) for o, items, truth in sets)

    low, high = (float(np.log(b / (1 - b))) for b in MODEL_FLOOR_BOUNDS)
    return float(expit(minimize_scalar(loss, bounds=(low, high), method="bounded", options={"xatol": 0.05}).x))


def _conflict_opinions(
    answers: Answers, reviewed: Gold, conflicts: pd.DataFrame, skill: np.ndarray, prior: float
) -> tuple[Opinions, np.ndarray, np.ndarray]:
    """The opinions on the reviewed items that have a conflict row (each its own local item), the
    local items and their reviewed labels."""
    truth = dict(zip(reviewed.items.tolist(), reviewed.labels.tolist(), strict=True))
    codes = np.array(sorted(set(conflicts["item"].tolist()) & set(truth)), dtype=np.int64)
    local = {c: i for i, c in enumerate(codes.tolist())}
    hard = np.flatnonzero(np.isin(answers.item, codes))
    rows = conflicts[conflicts["item"].isin(local)]
    row_item = rows["item"].map(local).to_numpy(np.int64)
    weight = np.append(skill, prior)[np.minimum(answers.worker[hard], len(skill))]
    soft = {"row": row_item, "item": row_item, "label": rows["label"].to_numpy(np.int64),
            "prob": rows["prob"].to_numpy(np.float64),
            "temperature": rows["temperature"].to_numpy(np.float64)}  # fmt: skip
    opinions = Opinions.of(len(codes), [local[int(c)] for c in answers.item[hard]], answers.label[hard], weight, soft)
    return opinions, np.arange(len(codes)), np.array([truth[int(c)] for c in codes], dtype=np.int64)


def _truth_log_prob(posterior: CandidatePosterior, items: np.ndarray, truth: np.ndarray, k: int) -> np.ndarray:
    r"""$\log P(z_i)$ of each item's true label: its candidate's probability, or its share of the
    mass nobody proposed."""
    n_cand = np.diff(posterior.indptr)
    share = posterior.unproposed / np.maximum(k - n_cand, 1)
    prob = share[items].copy()
    key = posterior.c_item.astype(np.int64) * k + posterior.c_label
    wanted = items.astype(np.int64) * k + truth
    at = np.minimum(np.searchsorted(key, wanted), len(key) - 1)
    found = key[at] == wanted if len(key) else np.zeros(len(items), dtype=bool)
    prob[found] = posterior.prob[at[found]]
    return np.log(np.maximum(prob, 1e-300))


def _temperatures(answers: Answers, gold: Gold, decider: Decider, prior: float) -> np.ndarray:
    """Per worker code the temperature of its soft rows (1 for humans and without soft answers),
    learned by ``em.SoftVotes`` against the posterior of the human answers at the prior skill."""
    out = np.ones(answers.n_workers)
    if answers.soft is None or not len(answers.soft):
        return out
    humans = replace(answers, soft=None)
    posterior = decider.posterior(opinions_of(humans, np.full(answers.n_workers, prior), unseen_skill=prior))
    k = answers.n_labels
    unproposed = posterior.unproposed / np.maximum(k - np.diff(posterior.indptr), 1)
    dense = np.repeat(unproposed[:, None], k, axis=1)
    dense[posterior.c_item, posterior.c_label] = posterior.prob
    votes = SoftVotes(answers, gold)
    votes.fit(np.log(np.maximum(dense, EPS)))
    out[votes.soft_workers] = votes.alpha[votes.soft_workers]
    return out


def _calibrator(
    answers: Answers,
    gold: Gold,
    reviewed: Gold | None,
    policy: ConsensusPolicy,
    prior: float,
    strength: float,
    temperatures: np.ndarray,
    typical: float,
    skills: SkillSource,
    random_state: int,
    floor: float | None = None,
) -> TopLabelCalibrator | None:
    """Fitted on the gold items' prefix states, each scored with the skills of a fit that hid its
    half of the gold (None: too little gold, or states at one answer count only)."""
    fold = halves(answers.items[gold.items], random_state)
    truth = np.full(answers.n_items, -1, dtype=np.int64)
    truth[gold.items] = gold.labels
    decider = Decider(answers.labels, policy, typical_skill=typical)
    raw, right, count = [], [], []
    for f in (0, 1):
        hidden = fold == f
        if not hidden.any():
            continue
        kept = Gold(gold.items[~hidden], gold.labels[~hidden])
        skill, _, _, fitted = fit_skills(
            answers, kept, decider, prior, strength, temperatures, reviewed=reviewed, skills=skills
        )
        fitted = fitted.with_model_floor(floor)
        states, state_item = prefix_states(answers, gold.items[hidden], policy.max_overlap)
        opinions = opinions_of(states, skill, temperatures, unseen_skill=prior)
        label, confidence = fitted.raw(opinions)
        raw.append(confidence)
        right.append(label == truth[state_item])
        count.append(opinions.counts())
    raw, right, count = (np.concatenate(x) for x in (raw, right, count))
    if len(raw) < MIN_CALIBRATION_STATES or len(np.unique(count)) < 2:
        return None  # a curve from fewer states, or from one answer count only, would be guesswork
    with contextlib.suppress(InputError):  # all of it right, or all wrong: stay raw
        calibrator = TopLabelCalibrator(features=("confidence", "n_answers"), per_answer_count=True)
        return calibrator.fit(raw, right, n_answers=count)
    return None


def halves(names: pd.Index, seed: int = 0) -> np.ndarray:
    """The cross-fitting half (0 or 1) of each item, from a hash of its name and ``seed``: the
    same item falls in the same half whatever order or codes the items came in."""
    return np.array([zlib.crc32(f"{seed}:{name}".encode()) & 1 for name in names], dtype=np.int64)


def prefix_states(answers: Answers, items: np.ndarray, max_overlap: int) -> tuple[Answers, np.ndarray]:
    """Virtual items: item g after its first j answers (in array order), j = 1..min(n_g, max_overlap),
    and, when a model voted on g, before any (j = 0: the model alone, a state the decision sees
    and must know how right it is, not extrapolate to).

    Returns the answers of the virtual items (soft answers of g copied to each of its states) and,
    per virtual item, the code of the item it is a state of."""
    items = np.unique(items)
    local_of = np.full(answers.n_items, -1, dtype=np.int64)
    local_of[items] = np.arange(len(items))
    rows = np.flatnonzero(local_of[answers.item] >= 0)
    rows = rows[np.argsort(local_of[answers.item[rows]], kind="stable")]
    local = local_of[answers.item[rows]]
    per_item = np.bincount(local, minlength=len(items))
    rank = np.arange(len(rows)) - np.searchsorted(local, local)
    voted = np.zeros(len(items), dtype=np.int64)
    if answers.soft is not None:
        soft_local = local_of[answers.soft.item]
        voted[np.unique(soft_local[soft_local >= 0])] = 1
    n_states = np.minimum(per_item, max_overlap) + voted
    offset = np.cumsum(n_states) - n_states + voted  # where the state after the first answer is
    copies = np.maximum(np.minimum(per_item, max_overlap)[local] - rank, 0)  # rank r: states r+1 .. min(n, max)
    answer = np.repeat(rows, copies)
    j = np.repeat(rank, copies) + runs(copies)[1]
    virtual = np.repeat(offset[local], copies) + j
    soft = None
    if answers.soft is not None:
        soft_rows = np.flatnonzero(soft_local >= 0)
        first = (offset - voted)[soft_local[soft_rows]]  # every state of the item, the model-only one first
        soft_copies = n_states[soft_local[soft_rows]]
        source = np.repeat(soft_rows, soft_copies)
        soft = SoftAnswers(
            item=(np.repeat(first, soft_copies) + runs(soft_copies)[1]).astype(np.int32),
            worker=answers.soft.worker[source],
            probs=answers.soft.probs[source],
        )
    states = replace(
        answers,
        item=virtual.astype(np.int32),
        worker=answers.worker[answer],
        label=answers.label[answer],
        items=pd.RangeIndex(int(n_states.sum())),
        weight=None if answers.weight is None else answers.weight[answer],
        time=None,
        soft=soft,
    )
    return states, np.repeat(items, n_states)


# -- the service's refit: the same fit on the arrays it read -------------------------------------


@dataclass(frozen=True)
class StoredAnswers:
    """The human answers of a project (database ids and label codes), its gold and the labels
    reviewers gave escalated items, the model rows, and
    ``names``: each item's external id (index: database id; None: the ids themselves), by which
    the fit knows its items as ``crowdloop decide`` knows them (the calibrator's folds follow)."""

    item: np.ndarray
    annotator: np.ndarray
    label: np.ndarray
    gold_item: np.ndarray  # gold items ...
    gold_label: np.ndarray  # ... and their labels
    soft: pd.DataFrame  # columns version, item, label, prob (top labels of each prediction)
    names: pd.Series | None = None
    reviewed_item: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # escalated, reviewed ...
    reviewed_label: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # ... their final labels
    # for reviewed items, the row of the version that voted when they were escalated: columns item
    # (database id), label, prob, temperature
    conflicts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(CONFLICT_COLUMNS)))


@dataclass(frozen=True)
class RefitResult:
    skill_model: str
    annotators: np.ndarray  # database ids
    answers: np.ndarray  # answers of each in the refit
    right: np.ndarray  # expected right answers of each among ...
    total: np.ndarray  # ... the answers counted as evidence of skill
    skill: np.ndarray  # their refit skill
    prior: float  # the prior mean skill of the project's annotators
    temperatures: dict[int, float]  # model version id -> temperature
    calibrator: TopLabelCalibrator | None
    typical_skill: float
    skill_evidence: float
    branch_skills: dict[int, dict[str, float]]  # annotator id -> {branch code: skill}
    sibling_share: float | None = None  # of wrong answers (``WrongAnswers``; None: anywhere alike)
    vague_share: float | None = None  # of right answers (``VagueAnswers``; None: the path alike)
    model_floor: float | None = None  # of the model rows (``fit_model_floor``; None: no model rows)


def stored_answers(stored: StoredAnswers, labels: LabelSpace) -> tuple[Answers, Gold, Gold]:
    """The stored answers as ``Answers`` (items coded in database id order and named by their
    external ids, workers in id order; each model version a soft worker ``model:<id>`` with its top
    labels, the rest of its mass shared by the others as the decision reads it), and the gold and
    the reviewed items among them."""
    items, item_code = np.unique(stored.item, return_inverse=True)
    workers, worker_code = np.unique(stored.annotator, return_inverse=True)
    names = pd.Index(items) if stored.names is None else pd.Index(stored.names.reindex(items).to_numpy())
    answers = Answers(
        item=item_code.astype(np.int32),
        worker=worker_code.astype(np.int32),
        label=stored.label.astype(np.int32),
        items=names,
        workers=pd.Index(workers),
        labels=labels,
    )
    soft = stored.soft[np.isin(stored.soft["item"].to_numpy(), items)] if len(stored.soft) else stored.soft
    for version in sorted(soft["version"].unique().tolist()) if len(soft) else []:
        rows = soft[soft["version"] == version]
        row_of, row_items = pd.factorize(rows["item"])
        matrix = sp.csr_matrix(
            (rows["prob"].to_numpy(np.float64), (row_of, rows["label"].to_numpy(np.int64))),
            shape=(len(row_items), len(labels)),
        )
        answers = answers.with_soft(
            f"model:{version}", names[np.searchsorted(items, row_items.to_numpy())], matrix, partial=True
        )
    return (
        answers,
        _coded(stored.gold_item, stored.gold_label, items),
        _coded(stored.reviewed_item, stored.reviewed_label, items),
    )


def _coded(item: np.ndarray, label: np.ndarray, items: np.ndarray) -> Gold:
    """The (item, label) pairs whose item has answers, the item as its code among ``items``."""
    known = np.isin(item, items)
    return Gold(np.searchsorted(items, item[known]), label[known].astype(np.int64))


def refit(stored: StoredAnswers, labels: LabelSpace, policy: ConsensusPolicy, rules: SkillRules) -> RefitResult | None:
    """``fit_decision`` on a project's stored answers, and branch skills (None: no answers yet)."""
    if not len(stored.item):
        return None
    answers, gold, reviewed = stored_answers(stored, labels)
    items = np.unique(stored.item)
    conflicts = stored.conflicts[stored.conflicts["item"].isin(items)]
    conflicts = conflicts.assign(item=np.searchsorted(items, conflicts["item"].to_numpy(np.int64)))
    model = fit_decision(answers, gold, policy, rules, reviewed=reviewed, conflicts=conflicts)
    humans = np.unique(answers.worker)
    temperatures = {
        int(str(name).split(":", 1)[1]): float(model.temperatures[code])
        for code, name in enumerate(answers.workers)
        if str(name).startswith("model:")
    }
    return RefitResult(
        skill_model=SKILL_MODEL,
        annotators=answers.workers.to_numpy()[humans].astype(np.int64),
        answers=np.bincount(answers.worker, minlength=answers.n_workers)[humans],
        right=model.right[humans],
        total=model.total[humans],
        skill=model.skill[humans],
        prior=model.prior,
        temperatures=temperatures,
        calibrator=model.calibrator,
        typical_skill=model.typical_skill,
        skill_evidence=model.skill_evidence,
        branch_skills=_branch_skills(answers, gold, labels, model.skill),
        sibling_share=model.sibling_share,
        vague_share=model.vague_share,
        model_floor=model.model_floor,
    )


def _branch_skills(answers: Answers, gold: Gold, labels: LabelSpace, skill: np.ndarray) -> dict[int, dict[str, float]]:
    if not isinstance(labels, Taxonomy) or not len(gold):
        return {}
    truth = np.full(answers.n_items, -1, dtype=np.int64)
    truth[gold.items] = gold.labels
    branches = BranchSkills().fit(answers, truth, skill)
    codes = [str(int(c)) for c in branches.branches_]
    humans = np.unique(answers.worker)
    return {
        int(answers.workers[w]): dict(zip(codes, branches.skill_[w].round(6).tolist(), strict=True)) for w in humans
    }
