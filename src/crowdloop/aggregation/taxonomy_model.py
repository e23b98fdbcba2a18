r"""Truth inference for large label spaces: a per-worker skill on top of one pooled confusion
structure shaped by the taxonomy, with a sparse posterior (only each item's candidate labels)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import minimize_scalar

from crowdloop.aggregation.base import Aggregator, Gold, TrueLabels
from crowdloop.aggregation.em import EPS
from crowdloop.aggregation.posterior import CandidatePosterior, Posterior, top_of_csr
from crowdloop.answers import Answers
from crowdloop.errors import ConfigError
from crowdloop.labels import LabelSpace, Taxonomy

RELATIONS: tuple[str, ...] = (
    "parent",
    "ancestor",
    "child",
    "descendant",
    "sibling",
    "nephew",
    "aunt",
    "cousin",
    "distant",
    "top-level",
    "stranger",
)
r"""How a wrong answer $l$ relates to the true label $k$, by the steps $u$ up from $k$ to their
lowest common ancestor and $d$ down from it to $l$ (the forest hangs from a virtual root):

========== ============================= ========================================================
relation   $(u, d)$                      meaning
========== ============================= ========================================================
parent     $(1, 0)$                      the answer is the true label's parent (an inner node)
ancestor   $(\ge 2, 0)$                  a coarser ancestor
child      $(0, 1)$                      a child of the true label (too specific)
descendant $(0, \ge 2)$                  a deeper descendant
sibling    $(1, 1)$                      same parent
nephew     $(1, \ge 2)$                  below a sibling
aunt       $(2, 1)$                      a sibling of the parent
cousin     $(2, \ge 2)$                  same grandparent
distant    $(\ge 3, \ge 1)$              same top-level branch, far apart
top-level  LCA = root, $d = 1$           another top-level node (every wrong label of a flat space)
stranger   LCA = root, $d \ge 2$         a node under another top-level branch
========== ============================= ========================================================
"""

_RELATION_OF_UD = np.array(
    [
        [-1, 2, 3],  # u = 0: exact, child, descendant
        [0, 4, 5],  # u = 1: parent, sibling, nephew
        [1, 6, 7],  # u = 2: ancestor, aunt, cousin
        [1, 8, 8],  # u >= 3: ancestor, distant, distant
    ],
    dtype=np.int8,
)
_TOP_LEVEL, _STRANGER = 9, 10


@dataclass(frozen=True)
class TreeShape:
    """The shape of a label space as a forest: ``depth`` and ``path_codes`` (as ``Taxonomy``; a flat
    space is a forest of K top-level nodes) and ``sizes[k, r]``: the number of labels in relation
    ``r`` (see ``RELATIONS``) to ``k``. Memory: O(K x max depth + K x R)."""

    depth: np.ndarray
    path_codes: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, labels: LabelSpace) -> TreeShape:
        k = len(labels)
        if isinstance(labels, Taxonomy):
            depth, path_codes = labels.depth.astype(np.int32), labels.path_codes
        else:
            depth, path_codes = np.ones(k, dtype=np.int32), np.arange(k, dtype=np.int32)[:, None]
        return cls(depth, path_codes, relation_sizes(depth, path_codes))

    def relation(self, true: np.ndarray, answered: np.ndarray) -> np.ndarray:
        """The relation code (index into ``RELATIONS``; -1 when equal) of each pair."""
        pa, pb = self.path_codes[true], self.path_codes[answered]
        lca = np.cumprod((pa == pb) & (pa >= 0), axis=-1).sum(axis=-1)
        up, down = self.depth[true] - lca, self.depth[answered] - lca
        inner = _RELATION_OF_UD[np.minimum(up, 3), np.minimum(down, 2)]
        root = np.where(down == 1, _TOP_LEVEL, _STRANGER)
        return np.where(lca > 0, inner, root).astype(np.int8)


def relation_sizes(depth: np.ndarray, path_codes: np.ndarray) -> np.ndarray:
    r"""``n_r(k)``, the number of labels in relation r to k, for every k (K x R), from the number
    of descendants of each node at each relative depth. With $a_u$ the ancestor $u$ steps above
    $k$ ($a_0 = k$), ``size`` the subtree size and ``desc[a, 1]`` the number of children, the labels
    whose lowest common ancestor with $k$ is $a_u$ ($u \ge 1$) and that lie below it number
    ``size[a_u] - 1 - size[a_{u-1}]``, of which ``desc[a_u, 1] - 1`` are its children."""
    k, max_depth = path_codes.shape
    column = np.arange(max_depth)
    valid = path_codes >= 0
    ancestors = path_codes[valid]
    relative = (depth[:, None] - 1 - column[None, :])[valid]
    desc = np.bincount(ancestors.astype(np.int64) * max_depth + relative, minlength=k * max_depth)
    desc = desc.reshape(k, max_depth).astype(np.int64)
    size = desc.sum(axis=1)
    children = desc[:, 1] if max_depth > 1 else np.zeros(k, dtype=np.int64)
    sizes = np.zeros((k, len(RELATIONS)), dtype=np.int64)
    sizes[:, 0] = depth >= 2
    sizes[:, 1] = np.maximum(depth - 2, 0)
    sizes[:, 2] = children
    sizes[:, 3] = size - 1 - children
    codes = np.arange(k)
    below = codes  # a_{u-1}
    for u in range(1, max_depth):
        exists = depth - 1 - u >= 0
        anc = np.where(exists, path_codes[codes, np.maximum(depth - 1 - u, 0)], 0)
        total = np.where(exists, size[anc] - 1 - size[below], 0)
        near = np.where(exists, children[anc] - 1, 0)
        if u == 1:
            sizes[:, 4] += near
            sizes[:, 5] += total - near
        elif u == 2:
            sizes[:, 6] += near
            sizes[:, 7] += total - near
        else:
            sizes[:, 8] += total
        below = np.where(exists, anc, below)
    n_top = int((depth == 1).sum())
    top = path_codes[:, 0]
    sizes[:, _TOP_LEVEL] = n_top - 1
    sizes[:, _STRANGER] = k - n_top - (size[top] - 1)
    return sizes


class TaxonomySkillModel(Aggregator):
    r"""Per-worker skill over one pooled confusion structure shaped by the taxonomy; scales to
    thousands of classes with memory O(answers + workers + K x a few).

    **Generative model.** Item $i$ has a true label $z_i \sim \pi$. Worker $w$ either gives a
    *partial* answer, an ancestor of the truth (probability $\nu$, pooled; only for labels that
    have ancestors), or commits to a label, right with probability $s_w$ (the worker's skill):

    $$P(y_{iw} = l \mid z_i = k) = \begin{cases}
    (1 - \nu_k)\, s_w & l = k \\
    \nu_k\, \rho_{r} / (n_{r}(k)\, T_k) & r = r(k, l) \in \{parent, ancestor\} \\
    (1 - \nu_k)(1 - s_w)\, \rho_{r} / (n_{r}(k)\, Z_k) & \text{any other } l \ne k
    \end{cases}$$

    with $\nu_k = \nu$ if $k$ has a parent (else 0). $r(k, l)$ is the taxonomy relation of the
    answer to the truth (``RELATIONS``: parent, ancestor, child, sibling, cousin, ..., stranger),
    $n_r(k)$ the number of labels in that relation to $k$ (uniform within a relation), $\rho$ one
    pooled table of eleven numbers and $T_k$, $Z_k$ the sums of $\rho_r$ over the partial,
    respectively error, relations that exist for $k$ ($n_r(k) > 0$). So a wrong answer is far more
    likely a sibling than a stranger, and $\rho$ learns by how much; an answer at an inner node
    ("Electronics > Audio" for a pair of headphones) is partial evidence for every leaf below it and
    does not count against the worker's skill: being vague is not being wrong. With
    ``partial_answers=False`` the ancestor relations are errors like the others (the plain
    "skill times pooled taxonomy confusion" model). A flat ``LabelSpace`` is a forest of K
    top-level nodes: every wrong label is *top-level*, $Q(l \mid k) = 1/(K-1)$ and the model is
    one-coin Dawid-Skene with a class prior, so it serves any K from 2 to thousands.

    **Priors.** $s_w \sim \mathrm{Beta}(m \bar s, m (1 - \bar s))$ with $\bar s$ the pooled accuracy
    of all workers and $m$ = ``skill_prior_strength``: a new worker is neither trusted nor condemned
    but starts at the crowd's average. $\pi$ is the posterior label frequency smoothed by
    ``prior_smoothing`` pseudo-items per label; $\rho$ gets one pseudo-answer per relation and
    $\nu$ a Beta(1/2, 1/2) prior.

    **Sparse posterior.** $P(z_i = k \mid y)$ is kept only for the *candidate* labels of item $i$:
    the labels someone answered, its gold label and the ``soft_top`` most probable labels of each
    soft answer. Labels nobody proposed get no mass (the approximation that makes K = 5,000
    cheap); the posterior is a CSR matrix with as many entries as candidates.

    **EM.** From the majority vote over candidates, alternate the M-step
    $s_w = (\sum_{i \in I_w} P(z_i = y_{iw}) + m \bar s) / (E|I_w^{committed}| + m)$ (the expected
    number of the worker's answers that are not partial), $\nu$ = expected partial answers over
    expected answers on items whose truth has a parent, $\pi_k \propto \sum_i P(z_i = k) + \alpha$, and
    $\rho$ within each group by the minorise-maximise fixed point
    $\rho_r \leftarrow C_r / \sum_k M_k [n_r(k) > 0] / Z_k(\rho)$ (as for Bradley-Terry; $C_r$: the
    expected answers in relation r, $M_k$: the expected answers of the group on items of class k),
    and the E-step $P(z_i = k \mid y) \propto \pi_k \prod_w P(y_{iw} \mid k)$ over the candidates.
    Every step is a ``bincount`` over (candidate, answer) pairs: no K x K and no n_items x K array.
    Stops when the mean log-likelihood per answer improves by less than ``tol`` or after
    ``n_iter`` rounds. Gold items stay clamped to their true labels (and so teach skills and $\rho$).

    **Soft answers** (a model's probability rows $p_j$) enter as a likelihood
    $\tilde p_{jk} \propto p_{jk}^{\alpha_m}$, the temperature $\alpha_m$ of soft worker $m$ fitted
    by cross-entropy to the posterior of the other opinions (as in ``em.SoftVotes``). Unlike
    ``em.SoftVotes`` the row is not divided by the prior: with a sparse posterior the prior of a
    label only the model proposes is barely estimated, and $\alpha \to 0$ must mean "no
    information" (a flat likelihood), not "cancel the prior". Only stored entries are kept;
    unstored labels share the row's remaining mass equally (or $10^{-10}$), so a top-k CSR row is
    enough.

    References: A. P. Dawid and A. M. Skene, *Applied Statistics* 28(1), 1979 (EM for confusions);
    the one-coin skill of D. Karger, S. Oh and D. Shah, NIPS 2011; pooled, structured confusions as
    in H.-C. Kim and Z. Ghahramani's community BCC (and Venanzi et al., WWW 2014), here with the
    community replaced by the taxonomy; temperature scaling: C. Guo et al., ICML 2017.

    >>> import pandas as pd
    >>> from crowdloop.labels import Taxonomy
    >>> tax = Taxonomy.from_paths(["A > a1", "A > a2", "B > b1"])
    >>> labels = ["A > a1", "A", "B > b1", "A > a2", "A > a2", "B > b1"]
    >>> df = pd.DataFrame({"task": [1, 1, 1, 2, 2, 2], "worker": list("uvwuvw"), "label": labels})
    >>> TaxonomySkillModel(taxonomy=tax).fit_predict(df).tolist()
    ['A > a1', 'A > a2']

    Fitted: ``labels_``, ``posterior_`` (sparse ``Posterior``), ``probas_`` (sparse frame),
    ``skills_`` (Series worker -> $s_w$; for a soft-only worker the mean calibrated probability of
    the posterior label), ``rho_`` (Series relation -> $\rho_r$; parent + ancestor sum to 1 and
    the nine error relations sum to 1, or all eleven with ``partial_answers=False``), ``partial_rate_`` ($\nu$),
    ``priors_`` (Series label -> $\pi_k$), ``soft_temperatures_`` (Series soft worker -> $\alpha$),
    ``loss_history_`` (mean log-likelihood per answer), ``n_iter_``.
    """

    def __init__(
        self,
        taxonomy: LabelSpace | None = None,
        n_iter: int = 100,
        tol: float = 1e-5,
        skill_prior_strength: float = 4.0,
        prior_smoothing: float = 1.0,
        soft_top: int = 5,
        partial_answers: bool = True,
    ) -> None:
        self.taxonomy = taxonomy
        self.n_iter = n_iter
        self.tol = tol
        self.skill_prior_strength = skill_prior_strength
        self.prior_smoothing = prior_smoothing
        self.soft_top = soft_top
        self.partial_answers = partial_answers

    def fit(self, data: Answers | pd.DataFrame, true_labels: TrueLabels = None) -> TaxonomySkillModel:
        """Fit on ``Answers`` or a frame; a frame's labels are encoded with ``taxonomy`` when given."""
        if isinstance(data, pd.DataFrame) and self.taxonomy is not None:
            data = Answers.from_frame(data, labels=self.taxonomy)
        return super().fit(data, true_labels)

    def _check_params(self) -> None:
        super()._check_params()
        if self.taxonomy is not None and not isinstance(self.taxonomy, LabelSpace):
            raise ConfigError(f"taxonomy must be a LabelSpace or Taxonomy, got {type(self.taxonomy).__name__}")
        if not self.skill_prior_strength >= 0:
            raise ConfigError(f"skill_prior_strength must be >= 0, got {self.skill_prior_strength!r}")
        if not self.prior_smoothing > 0:
            raise ConfigError(f"prior_smoothing must be > 0, got {self.prior_smoothing!r}")
        if not isinstance(self.soft_top, (int, np.integer)) or self.soft_top < 1:
            raise ConfigError(f"soft_top must be a positive integer, got {self.soft_top!r}")

    def _fit(self, answers: Answers, gold: Gold) -> Posterior:
        shape = TreeShape.of(answers.labels)
        state = _State(answers, gold, shape, self.soft_top)
        k, n_rel = answers.n_labels, len(RELATIONS)
        available = (shape.sizes > 0).astype(np.float64)
        log_size = np.log(np.maximum(shape.sizes, 1)).astype(np.float64)
        vague = np.zeros(n_rel, dtype=bool)
        vague[[RELATIONS.index("parent"), RELATIONS.index("ancestor")]] = self.partial_answers
        groups = [g for g in (vague, ~vague) if g.any()]
        exists = available.any(axis=0)  # relations some label has (only "top-level" in a flat space)
        rho = np.zeros(n_rel)
        for group in groups:
            rho[group & exists] = 1.0 / max((group & exists).sum(), 1)
        can_be_vague = (available * vague).any(axis=1)  # labels with an ancestor
        t_vague, t_error = _answer_kinds(state, vague)
        params: dict[str, np.ndarray] = {}

        def m_step(post: np.ndarray) -> None:
            nonlocal rho
            mass = post[state.t_cand] * state.t_weight
            eligible = mass[can_be_vague[state.t_true]].sum()
            nu = float(np.clip((mass[t_vague].sum() + 0.5) / (eligible + 1.0), 1e-6, 1 - 1e-6))
            correct = post[state.own_candidate] * state.answer_weight
            hits = np.bincount(answers.worker, weights=correct, minlength=answers.n_workers)
            counts = np.bincount(answers.worker, weights=state.answer_weight, minlength=answers.n_workers)
            counts -= np.bincount(state.t_worker[t_vague], weights=mass[t_vague], minlength=answers.n_workers)
            counts = np.maximum(counts, hits)
            mean_skill = float(np.clip((hits.sum() + 1.0) / (counts.sum() + 2.0), 0.01, 0.99))
            m = self.skill_prior_strength
            params["skill"] = np.clip((hits + m * mean_skill) / np.maximum(counts + m, EPS), 1e-4, 1 - 1e-4)
            for group, triples in ((vague, t_vague), (~vague, t_error)):
                if not group.any():
                    continue
                rel = state.t_rel[triples]
                rel_counts = np.bincount(rel, weights=mass[triples], minlength=n_rel) + (group & exists)
                per_class = np.bincount(state.t_true[triples], weights=mass[triples], minlength=k)
                rho[group] = _fit_rho(rho * group, rel_counts * group, per_class, available * group)[group]
            params["log_rho"] = np.log(np.maximum(rho, EPS))
            params["log_z"] = np.log(np.maximum(available @ (rho * ~vague), EPS))
            params["log_t"] = np.log(np.maximum(available @ (rho * vague), EPS))
            params["log_nu"] = np.array(np.log(nu))
            params["log_keep"] = np.log1p(-nu * can_be_vague)
            params["nu"] = np.array(nu if vague.any() else 0.0)
            prior = np.bincount(state.c_label, weights=post, minlength=k) + self.prior_smoothing
            params["log_prior"] = np.log(prior / prior.sum())

        def hard_scores() -> np.ndarray:
            return _hard_scores(state, params, params["skill"], log_size, vague)

        post = state.initial()
        history: list[float] = []
        for _ in range(self.n_iter):
            m_step(post)
            scores = hard_scores()
            if state.soft is not None:
                state.soft.fit(state, scores)
                scores = scores + state.soft.scores(state)
            post, log_norm = state.normalize(scores)
            history.append(float(log_norm[np.isfinite(log_norm)].sum()) / max(answers.n_answers + state.n_soft, 1))
            if len(history) > 1 and history[-1] - history[-2] < self.tol:
                break
        self.loss_history_ = history
        self.n_iter_ = len(history)
        labels = pd.Index(answers.labels.labels, name="label")
        self.rho_ = pd.Series(rho, index=pd.Index(RELATIONS, name="relation"), name="rho")
        self.partial_rate_ = float(params["nu"])
        self.priors_ = pd.Series(np.exp(params["log_prior"]), index=labels, name="prior")
        skills = params["skill"].copy()
        has_hard = np.bincount(answers.worker, minlength=answers.n_workers) > 0
        skills[~has_hard] = np.nan
        temperatures = pd.Series(dtype=np.float64, name="temperature")
        if state.soft is not None:
            agreement = state.soft.agreement(state, post, answers.n_workers)
            skills = np.where(has_hard, skills, agreement)
            soft_workers = state.soft.soft_workers
            temperatures = pd.Series(
                state.soft.alpha[soft_workers], index=answers.workers[soft_workers].rename("worker"), name="temperature"
            )
        self.soft_temperatures_ = temperatures
        self.skills_ = self._worker_series(skills)
        self.skill_codes_ = params["skill"].copy()
        self._scoring = _Scoring(shape, params, log_size, vague, state.soft.alpha.copy() if state.soft else None)
        matrix = sp.csr_matrix((post, state.c_label, state.indptr), shape=(answers.n_items, k))
        return Posterior(matrix)

    def score(self, answers: Answers, *, skill: np.ndarray | None = None) -> CandidatePosterior:
        r"""The posterior of the items of ``answers`` under the fitted parameters (one E-step, no
        refit), keeping the mass of the labels nobody proposed.

        ``answers`` must use the code tables of the fitted answers (e.g. ``Answers.subset``);
        ``skill`` overrides the fitted skills (indexed by worker code). The *unproposed* labels
        $U_i$ of item $i$ (all labels but its candidates) share one term:
        $\pi(U_i) \prod_{w} (1 - s_w)/(K - 1)$ (every answer is wrong for them, spread as in a flat
        space), times each soft row's mass outside its stored labels. So one answer of a worker
        of skill 0.8 leaves about 0.2 on the other labels instead of claiming certainty.
        """
        fitted = self._scoring
        skill = self.skill_codes_ if skill is None else np.asarray(skill, dtype=np.float64)
        skill = np.clip(skill, 1e-4, 1 - 1e-4)
        state = _State(answers, Gold.none(), fitted.shape, self.soft_top)
        scores = _hard_scores(state, fitted.params, skill, fitted.log_size, fitted.vague)
        k = answers.n_labels
        prior = np.exp(fitted.params["log_prior"])
        unproposed_prior = 1.0 - np.bincount(state.c_item, weights=prior[state.c_label], minlength=state.n_items)
        wrong = np.log1p(-skill[answers.worker]) - np.log(max(k - 1, 1))
        with np.errstate(divide="ignore"):
            rest = np.log(np.maximum(unproposed_prior, 0.0))
        rest = rest + np.bincount(answers.item, weights=wrong, minlength=state.n_items)
        if state.soft is not None:
            state.soft.alpha[: len(fitted.alpha)] = fitted.alpha
            scores = scores + state.soft.scores(state)
            rest = rest + state.soft.rest_scores(state)
        rest = np.where(unproposed_prior > 1e-12, rest, -np.inf)
        log_norm = np.logaddexp(_segment_logsumexp(scores, state.c_item, state.indptr, state.n_items), rest)
        empty = ~np.isfinite(log_norm)
        norm = np.where(empty, 0.0, log_norm)
        return CandidatePosterior(
            c_item=state.c_item,
            c_label=state.c_label,
            prob=np.exp(scores - norm[state.c_item]),
            unproposed=np.where(empty, 1.0, np.exp(rest - norm)),
            indptr=state.indptr,
        )


@dataclass(frozen=True)
class _Scoring:
    """What ``score`` needs of a fit: the tree shape, the parameters and the soft temperatures."""

    shape: TreeShape
    params: dict
    log_size: np.ndarray
    vague: np.ndarray
    alpha: np.ndarray | None


def _answer_kinds(state: _State, vague: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per (candidate, answer) pair: is the answer a vague (ancestor) one, or an error?"""
    t_vague = vague[state.t_rel_safe] & state.t_wrong
    return t_vague, state.t_wrong & ~t_vague


def _hard_scores(state: _State, params: dict, skill: np.ndarray, log_size: np.ndarray, vague: np.ndarray) -> np.ndarray:
    """log prior + sum of the hard answers' log-likelihoods, per candidate."""
    t_vague, t_error = _answer_kinds(state, vague)
    s, true, rel = skill[state.t_worker], state.t_true, state.t_rel_safe
    keep = params["log_keep"][true]
    structure = params["log_rho"][rel] - log_size[true, rel]
    ll = np.where(
        t_vague,
        params["log_nu"] + structure - params["log_t"][true],
        np.where(t_error, keep + np.log1p(-s) + structure - params["log_z"][true], keep + np.log(s)),
    )
    scores = np.bincount(state.t_cand, weights=ll * state.t_weight, minlength=state.n_cand)
    return scores + params["log_prior"][state.c_label]


def _fit_rho(rho: np.ndarray, rel_counts: np.ndarray, per_class: np.ndarray, available: np.ndarray) -> np.ndarray:
    """Maximise $\\sum_r C_r \\log\\rho_r - \\sum_k M_k \\log Z_k(\\rho)$ by its MM fixed point."""
    for _ in range(50):
        z = np.maximum(available @ rho, EPS)
        denominator = (per_class / z) @ available
        new = np.where(denominator > 0, rel_counts / np.maximum(denominator, EPS), rho)
        if not new.sum() > 0:
            return rho
        new = new / new.sum()
        if np.abs(new - rho).max() < 1e-9:
            return new
        rho = new
    return rho


class _State:
    """The static structure of one fit: candidates (item, label) sorted by item, and the
    (candidate, hard answer) pairs of the same item with their relation."""

    def __init__(self, answers: Answers, gold: Gold, shape: TreeShape, soft_top: int) -> None:
        n, k = answers.n_items, answers.n_labels
        self.n_items = n
        keys = [answers.item.astype(np.int64) * k + answers.label, gold.items.astype(np.int64) * k + gold.labels]
        soft_rows = None
        if answers.soft is not None:
            codes, _ = top_of_csr(answers.soft.probs, soft_top)
            soft_rows = np.repeat(np.arange(len(answers.soft)), codes.shape[1])
            flat = codes.ravel()
            keep = flat >= 0
            keys.append(answers.soft.item[soft_rows[keep]].astype(np.int64) * k + flat[keep])
        cand = np.unique(np.concatenate(keys))
        self.c_item = (cand // k).astype(np.int64)
        self.c_label = (cand % k).astype(np.int64)
        self.n_cand = len(cand)
        self.indptr = np.searchsorted(self.c_item, np.arange(n + 1)).astype(np.int64)
        # (candidate, answer) pairs: every candidate of an item meets every hard answer of the item
        order = np.argsort(answers.item, kind="stable")
        answer_ptr = np.searchsorted(answers.item[order], np.arange(n + 1))
        t_cand, t_answer = _expand(self.c_item, answer_ptr, order)
        self.t_cand = t_cand
        self.t_worker = answers.worker[t_answer]
        label = answers.label[t_answer].astype(np.int64)
        self.t_true = self.c_label[t_cand]
        self.answer_weight = np.ones(answers.n_answers) if answers.weight is None else answers.weight
        self.t_weight = self.answer_weight[t_answer]
        pair_keys, pair_index = np.unique(self.t_true * k + label, return_inverse=True)
        self.t_rel = shape.relation(pair_keys // k, pair_keys % k)[pair_index]
        self.t_wrong = self.t_rel >= 0
        self.t_rel_safe = np.maximum(self.t_rel, 0).astype(np.intp)
        self.own_candidate = np.empty(answers.n_answers, dtype=np.int64)
        self.own_candidate[t_answer[~self.t_wrong]] = t_cand[~self.t_wrong]
        self.answer_item = answers.item
        self.answer_label = answers.label
        self.gold_label = np.full(n, -1, dtype=np.int64)
        self.gold_label[gold.items] = gold.labels
        self.c_gold = self.gold_label[self.c_item]
        self.soft = _SoftPart(answers, gold, self) if answers.soft is not None else None
        self.n_soft = 0 if answers.soft is None else len(answers.soft)

    def initial(self) -> np.ndarray:
        """Majority vote over the candidates (soft answers vote with their probabilities)."""
        votes = np.where(self.t_wrong, 0.0, self.t_weight)
        scores = np.bincount(self.t_cand, weights=votes, minlength=self.n_cand)
        if self.soft is not None:
            scores = scores + self.soft.initial_votes(self)
        scores = scores + 1e-6  # an item with only gold or zero-weight answers: uniform
        sums = np.bincount(self.c_item, weights=scores, minlength=self.n_items)
        return self._clamp(scores / sums[self.c_item])

    def normalize(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Softmax of log scores within each item (gold clamped) and each item's log normaliser."""
        log_norm = _segment_logsumexp(scores, self.c_item, self.indptr, self.n_items)
        return self._clamp(np.exp(scores - log_norm[self.c_item])), log_norm

    def _clamp(self, post: np.ndarray) -> np.ndarray:
        gold = self.c_gold >= 0
        post[gold] = (self.c_label[gold] == self.c_gold[gold]).astype(np.float64)
        return post


class _SoftPart:
    """Soft answers over the candidates: per (soft row, candidate of its item) the log probability
    the row gives the candidate (stored value, else the row's unstored mass shared equally)."""

    def __init__(self, answers: Answers, gold: Gold, state: _State) -> None:
        soft = answers.soft
        k = answers.n_labels
        probs = soft.probs.tocsr(copy=True)
        probs.sort_indices()  # entry keys (row, label) must be sorted for the look-up below
        m = len(soft)
        self.worker = soft.worker
        self.soft_workers = np.unique(soft.worker)
        self.alpha = np.ones(answers.n_workers)
        self.specs = {int(w): soft.temperature(w) for w in self.soft_workers}
        for w, spec in self.specs.items():  # a stated temperature is kept; a learned one starts in bounds
            self.alpha[w] = spec.value if spec.value is not None else float(np.clip(1.0, *spec.bounds))
        nnz = np.diff(probs.indptr)
        self.entry_row = np.repeat(np.arange(m), nnz)
        self.entry_log = np.log(np.maximum(probs.data, EPS))
        rest = np.maximum(1.0 - np.asarray(probs.sum(axis=1)).ravel(), 0.0)
        self.n_rest = (k - nnz).astype(np.float64)
        self.rest_log = np.log(np.maximum(np.divide(rest, self.n_rest, out=np.zeros(m), where=self.n_rest > 0), EPS))
        order = np.argsort(soft.item, kind="stable")
        row_ptr = np.searchsorted(soft.item[order], np.arange(state.n_items + 1))
        self.s_cand, self.s_row = _expand(state.c_item, row_ptr, order)
        label = state.c_label[self.s_cand]
        entry_keys = self.entry_row.astype(np.int64) * k + probs.indices
        wanted = self.s_row.astype(np.int64) * k + label
        at = np.minimum(np.searchsorted(entry_keys, wanted), max(len(entry_keys) - 1, 0))
        found = (entry_keys[at] == wanted) if len(entry_keys) else np.zeros(len(wanted), dtype=bool)
        self.s_log = np.where(found, self.entry_log[at] if len(entry_keys) else 0.0, self.rest_log[self.s_row])
        has_hard = np.zeros(state.n_items, dtype=bool)
        has_hard[answers.item] = True
        has_hard[gold.items] = True
        self.referenced = has_hard[soft.item]
        self.soft_item = soft.item

    def log_normalizer(self, alpha_rows: np.ndarray) -> np.ndarray:
        """$\\log \\sum_k p_{jk}^{\\alpha}$ of every soft row (stored entries plus the shared rest)."""
        stored = np.bincount(
            self.entry_row, weights=np.exp(alpha_rows[self.entry_row] * self.entry_log), minlength=len(alpha_rows)
        )
        total = stored + self.n_rest * np.exp(alpha_rows * self.rest_log)
        return np.log(np.maximum(total, EPS))

    def calibrated_log(self) -> np.ndarray:
        """Per (soft row, candidate) pair: $\\log \\tilde p$ under the current temperatures."""
        alpha_rows = self.alpha[self.worker]
        return alpha_rows[self.s_row] * self.s_log - self.log_normalizer(alpha_rows)[self.s_row]

    def scores(self, state: _State) -> np.ndarray:
        return np.bincount(self.s_cand, weights=self.calibrated_log(), minlength=state.n_cand)

    def rest_scores(self, state: _State) -> np.ndarray:
        """Per item: the soft rows' tempered log probability of one label outside their stored ones."""
        alpha_rows = self.alpha[self.worker]
        log_rest = alpha_rows * self.rest_log - self.log_normalizer(alpha_rows)
        return np.bincount(self.soft_item, weights=log_rest, minlength=state.n_items)

    def initial_votes(self, state: _State) -> np.ndarray:
        return np.bincount(self.s_cand, weights=np.exp(self.s_log), minlength=state.n_cand)

    def fit(self, state: _State, hard_scores: np.ndarray) -> None:
        """Refit each soft worker's temperature against the posterior of the other opinions."""
        reference, _ = state.normalize(hard_scores)
        for m in self.soft_workers:
            rows = (self.worker == m) & self.referenced
            if not rows.any() or self.specs[int(m)].value is not None:
                continue
            pairs = rows[self.s_row]
            weight = reference[self.s_cand[pairs]]
            linear = float((weight * self.s_log[pairs]).sum())
            selected = np.flatnonzero(rows)
            entry = np.isin(self.entry_row, selected)
            entry_row = np.searchsorted(selected, self.entry_row[entry])
            entry_log = self.entry_log[entry]
            n_rest, rest_log = self.n_rest[selected], self.rest_log[selected]
            # the reference mass each row spreads over its candidates (1 when the item has one)
            row = np.searchsorted(selected, self.s_row[pairs])
            row_mass = np.bincount(row, weights=weight, minlength=len(selected))
            cross_entropy = partial(
                _soft_cross_entropy,
                linear=linear,
                entry_row=entry_row,
                entry_log=entry_log,
                n_rest=n_rest,
                rest_log=rest_log,
                row_mass=row_mass,
            )
            bounds = self.specs[int(m)].bounds
            self.alpha[m] = float(minimize_scalar(cross_entropy, bounds=bounds, method="bounded").x)

    def agreement(self, state: _State, post: np.ndarray, n_workers: int) -> np.ndarray:
        """Per soft worker, the mean calibrated probability of the posterior's distribution."""
        calibrated = np.exp(self.calibrated_log()) * post[self.s_cand]
        agree = np.bincount(self.s_row, weights=calibrated, minlength=len(self.worker))
        counts = np.bincount(self.worker, minlength=n_workers)
        sums = np.bincount(self.worker, weights=agree, minlength=n_workers)
        return np.divide(sums, counts, out=np.full(n_workers, np.nan), where=counts > 0)


def _soft_cross_entropy(
    alpha: float,
    *,
    linear: float,
    entry_row: np.ndarray,
    entry_log: np.ndarray,
    n_rest: np.ndarray,
    rest_log: np.ndarray,
    row_mass: np.ndarray,
) -> float:
    """Cross-entropy of the reference against rows tempered by ``alpha``: $-\\alpha \\sum r \\log p
    + \\sum_j (\\sum_c r_{jc}) \\log \\sum_k p_{jk}^\\alpha$."""
    stored = np.bincount(entry_row, weights=np.exp(alpha * entry_log), minlength=len(n_rest))
    log_norm = np.log(np.maximum(stored + n_rest * np.exp(alpha * rest_log), EPS))
    return float(-alpha * linear + (row_mass * log_norm).sum())


def _expand(c_item: np.ndarray, ptr: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (candidate, row) pairs of the same item, rows of item i being ``order[ptr[i]:ptr[i+1]]``."""
    count = (ptr[1:] - ptr[:-1])[c_item]
    pair_cand = np.repeat(np.arange(len(c_item)), count)
    start = np.repeat(np.cumsum(count) - count, count)
    offset = np.arange(len(pair_cand)) - start
    return pair_cand, order[ptr[c_item[pair_cand]] + offset]


def _segment_logsumexp(values: np.ndarray, segment: np.ndarray, indptr: np.ndarray, n: int) -> np.ndarray:
    """log-sum-exp of ``values`` within each segment (sorted ``segment`` ids; -inf when empty)."""
    out = np.full(n, -np.inf)
    if not len(values):
        return out
    nonempty = np.flatnonzero(indptr[1:] > indptr[:-1])
    peak = np.full(n, 0.0)
    peak[nonempty] = np.maximum.reduceat(values, indptr[nonempty])
    sums = np.bincount(segment, weights=np.exp(values - peak[segment]), minlength=n)
    out[nonempty] = peak[nonempty] + np.log(sums[nonempty])
    return out
