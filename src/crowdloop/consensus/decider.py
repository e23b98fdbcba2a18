r"""The decision for a batch of items, one or all of them: posteriors from the items' own
answers, in O(answers of those items), with the skills, temperatures and calibrator of the last
fit (``consensus.fitting``). ``crowdloop decide``, the replay and the labeling service all decide
through ``Decider.decide``.

The posterior is one-coin Dawid-Skene with known skills (Dawid & Skene 1979; the skills come from
the EM fit, ``fitting.fit_decision``, and in the service from gold answers since, ``SkillBook``).
With a uniform prior over the $K$ labels, item $i$ and candidate label $k$ score

$$\log P(k \mid \text{answers}) = \text{const} + \sum_{j \in i} \big[\,[a_j \preceq k] \log s_j
+ [a_j \not\preceq k] \log \big((1 - s_j)\, Q(a_j \mid k)\big)\big] + \sum_{m} \tau_m \log p_{mk}$$

where $a \preceq k$ means the answer $a$ is $k$ or, in a taxonomy, an ancestor of $k$ (an annotator
who only knows the branch is right about it), and a model's probability row $p_m$ votes raised to
its learned temperature $\tau_m$ (renormalised). $Q(a \mid k)$ is where a wrong answer lands
(``WrongAnswers``): evenly over the $K - 1$ other labels (one-coin Dawid-Skene), or in a taxonomy a
learned share of them on a sibling of the truth. The labels nobody proposed keep their mass, so
one answer is never certainty: the unnamed siblings of each answer share one term (a sibling is
what a wrong answer most often names), every other label another.

The status (accept / more / escalate, the answers to order now, the partial taxonomy level) is
``decisions.decide_arrays`` on the costed lookahead of ``control.Lookahead`` (built once per
decider: what depends on its policy and skills alone is kept across batches), and the pool order
is ``consensus.priority``.

A model votes, but it does not overrule the people who answered: an item is accepted only on a
label one of its answers backs (the answer itself or, in a taxonomy, an ancestor of it: the
person said at least that much), so one answer plus a model that agrees may settle an item, a
model that disagrees sends it to more answers. A model's own labels come only from the proof on
gold (``service.automation``). The failure this rules out is the feedback loop of a model trained
on the crowd's labels: a version that learned one wrongly accepted item .9999 sure (a bra as
fusion wear, on the Flipkart sample through the API) outvoted the expert who answered the next one
right, and every such label taught the next version the same. A vague answer ("Jewellery") does
not back the leaf the model picks inside it: that leaf is the model's own label. Backed so, on the
Flipkart sample through the API (seed 0), the 123 items accepted on a label no answer named or
descended to were .72 right, the 1,111 others .975.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from crowdloop.aggregation.calibration import TopLabelCalibrator
from crowdloop.aggregation.posterior import CandidatePosterior
from crowdloop.answers import Answers
from crowdloop.consensus.control import Lookahead, Outlook, TypicalSkill
from crowdloop.consensus.decisions import ESCALATED, MORE, Decided, ItemStates, decide_arrays
from crowdloop.consensus.policy import ConsensusPolicy
from crowdloop.consensus.priority import priority
from crowdloop.consensus.vague_answers import VagueAnswers
from crowdloop.consensus.wrong_answers import WrongAnswers
from crowdloop.labels import LabelSpace, Taxonomy

EPS = 1e-12
CAUTION = 0.2
"""The quantile of the accuracy the gold supports on which a label is accepted: accepted only when
the gold makes it 80% sure that the target is reached, whoever gave the label (crowd, model or both;
the service's labels without humans are proven at the same level, ``service.training``)."""


@dataclass(frozen=True)
class Opinions:
    """The opinions on a batch of ``n_items`` items as parallel arrays (items are local codes).

    Human answers: ``item``, ``label`` (codes), ``skill`` (the annotator's accuracy). Model rows:
    ``soft_row`` (one id per item and model version), ``soft_item``, ``soft_label``,
    ``soft_prob`` (the stored top labels of each row) and ``soft_temperature``."""

    n_items: int
    item: np.ndarray
    label: np.ndarray
    skill: np.ndarray
    soft_row: np.ndarray
    soft_item: np.ndarray
    soft_label: np.ndarray
    soft_prob: np.ndarray
    soft_temperature: np.ndarray

    @classmethod
    def of(
        cls,
        n_items: int,
        item: np.ndarray | list,
        label: np.ndarray | list,
        skill: np.ndarray | list,
        soft: pd.DataFrame | Mapping[str, np.ndarray] | None = None,
    ) -> Opinions:
        """``soft``: columns ``row, item, label, prob, temperature``, a frame or a mapping of
        arrays (None: no model opinions)."""
        soft = soft if soft is not None and len(soft["row"]) else None
        column = (lambda name, dtype: np.asarray(soft[name], dtype=dtype)) if soft is not None else None
        empty_i, empty_f = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        return cls(
            n_items=n_items,
            item=np.asarray(item, dtype=np.int64),
            label=np.asarray(label, dtype=np.int64),
            skill=np.asarray(skill, dtype=np.float64),
            soft_row=column("row", np.int64) if soft is not None else empty_i,
            soft_item=column("item", np.int64) if soft is not None else empty_i,
            soft_label=column("label", np.int64) if soft is not None else empty_i,
            soft_prob=column("prob", np.float64) if soft is not None else empty_f,
            soft_temperature=column("temperature", np.float64) if soft is not None else empty_f,
        )

    def counts(self) -> np.ndarray:
        """Human answers per item."""
        return np.bincount(self.item, minlength=self.n_items)


@dataclass(frozen=True)
class Pairs:
    """Every (answer, label or group of labels of its item) pair: the ``answer``'s index, the
    ``target``'s, whether the answer is ``consistent`` with the target (right if it is the truth)
    and, where it is not, whether it is a ``sibling`` of it; whether it names the target ``exact``ly
    (else an ancestor of it) and whether the target has ancestors to be ``vague`` about."""

    answer: np.ndarray
    target: np.ndarray
    consistent: np.ndarray
    sibling: np.ndarray
    exact: np.ndarray
    vague: np.ndarray


@dataclass(frozen=True)
class AnswerOutcomes:
    """Per answer, the expected counts of the E-step (``Decider.answer_outcomes``)."""

    right: np.ndarray
    named_sibling: np.ndarray
    right_about_deep: np.ndarray  # right about a truth that has ancestors ...
    vague: np.ndarray  # ... and names one of them


@dataclass(frozen=True)
class UnnamedSiblings:
    """Per item and parent of one of its answers, the ``count`` children of the parent nobody
    named, ``score`` (the log of their summed likelihood) and, once normalised, their ``mass``;
    the ``pairs`` of the answers and the groups of their items (consistent: the answer named the
    parent or an ancestor of it)."""

    item: np.ndarray
    parent: np.ndarray
    count: np.ndarray
    score: np.ndarray
    pairs: Pairs
    mass: np.ndarray | None = None


@dataclass(frozen=True)
class Decisions(Decided):
    """``Decided`` for every item of a batch, with ``priority`` (``consensus.priority``: expected
    information of one more answer per cost, as a share of the most it can be; 0 unless more) and
    ``branch`` (the top-level taxonomy node of the label, -1 unknown or flat)."""

    priority: np.ndarray
    branch: np.ndarray


class Decider:
    """The decision for batches of items (see the module docstring).

    ``typical_skill``: the median annotator accuracy (the lookahead and the priority assume a
    typical annotator), backed by ``skill_evidence`` observations of the crowd's accuracy (the
    lookahead integrates over what is not yet known, ``control.TypicalSkill``); ``calibrator``: a
    ``TopLabelCalibrator`` fitted on gold items' prefix states under this very posterior (None:
    decide on the raw posterior); ``caution``: decide on that quantile of the calibrated accuracy
    the gold supports (``TopLabelCalibrator.predict``); ``sibling_share``: the share of wrong
    answers that name a sibling of the truth (``WrongAnswers``; None: wrong answers land anywhere
    alike); ``vague_share``: the share of right answers that name an ancestor of the truth
    (``VagueAnswers``); ``model_floor``: the share of uniform every model row is mixed with before
    it votes, as the last fit learned it (``fitting.fit_model_floor``; None: the rows as stored)."""

    def __init__(
        self,
        labels: LabelSpace,
        policy: ConsensusPolicy,
        *,
        typical_skill: float,
        skill_evidence: float = float("inf"),
        calibrator: TopLabelCalibrator | None = None,
        caution: float | None = CAUTION,
        sibling_share: float | None = None,
        vague_share: float | None = None,
        model_floor: float | None = None,
    ) -> None:
        self.labels = labels
        self.model_floor = float(model_floor or 0.0)
        self.wrong_answers = WrongAnswers(labels, sibling_share)
        self.vague_answers = VagueAnswers(labels, vague_share)
        self.policy = policy
        self.typical_skill = float(typical_skill)
        self.skill_evidence = float(skill_evidence)
        self.calibrator = calibrator
        self.caution = caution
        self._taxonomy = labels if isinstance(labels, Taxonomy) else None
        self._lookahead = Lookahead(policy, TypicalSkill(self.typical_skill, self.skill_evidence), len(labels))

    def with_model_floor(self, floor: float | None) -> Decider:
        """This decision with every model row floored by ``floor`` (``_soft_scores``)."""
        other = copy.copy(self)
        other.model_floor = float(floor or 0.0)
        return other

    def with_shares(self, sibling: float | None, vague: float | None) -> Decider:
        """This decision with wrong answers shaped by ``sibling`` (``WrongAnswers``) and right ones
        worded by ``vague`` (``VagueAnswers``)."""
        other = copy.copy(self)
        other.wrong_answers = WrongAnswers(self.labels, sibling)
        other.vague_answers = VagueAnswers(self.labels, vague)
        return other

    def posterior(self, opinions: Opinions) -> CandidatePosterior:
        """The candidate posterior of every item of the batch."""
        return self._posterior(opinions)[0]

    def _posterior(self, opinions: Opinions) -> tuple[CandidatePosterior, Pairs, UnnamedSiblings]:
        """The candidate posterior, the pairs of answers and candidates, and the unnamed siblings
        of the answers with their mass."""
        k = len(self.labels)
        n = opinions.n_items
        skill = np.minimum(np.maximum(opinions.skill, 1e-4), 1 - 1e-4)
        log_right, log_wrong = np.log(skill), np.log1p(-skill)
        keys = opinions.item * k + opinions.label
        if len(opinions.soft_row):
            keys = np.concatenate([keys, opinions.soft_item * k + opinions.soft_label])
        keys = np.unique(keys)
        c_item, c_label = keys // k, keys % k
        indptr = np.searchsorted(c_item, np.arange(n + 1))
        per_item = np.diff(indptr)
        pairs = self._pairs(opinions, c_label, indptr, per_item)
        truth = c_label[pairs.target]
        wrong = log_wrong[pairs.answer] + self.wrong_answers.log_given(pairs.sibling, self.wrong_answers.parent[truth])
        right = log_right[pairs.answer] + self.vague_answers.log_given(pairs.exact, truth)
        value = np.where(pairs.consistent, right, wrong)
        score = np.bincount(pairs.target, weights=value, minlength=len(c_label)).astype(np.float64)
        soft_rest = np.zeros(n)
        if len(opinions.soft_row):
            soft_cand, soft_rest = self._soft_scores(opinions, c_item, c_label, indptr, k, self.model_floor)
            score += soft_cand
        groups = self._unnamed_siblings(opinions, log_right, log_wrong, c_item, c_label, n)
        group_score = groups.score + soft_rest[groups.item]
        # the other labels nobody named, each wrong for every answer (``WrongAnswers.log_far_mean``)
        far = k - per_item - np.bincount(groups.item, weights=groups.count, minlength=n)
        answered = np.bincount(opinions.item, minlength=n)
        far_score = np.bincount(opinions.item, weights=log_wrong, minlength=n) + soft_rest
        far_score += answered * self.wrong_answers.log_far_mean
        far_score = np.where(far > 0, far_score + np.log(np.maximum(far, 1)), -np.inf)
        top = far_score.copy()
        proposed = per_item > 0
        if len(score):  # candidates are sorted by item: the best of each item's run
            top[proposed] = np.maximum(top[proposed], np.maximum.reduceat(score, indptr[:-1][proposed]))
        np.maximum.at(top, groups.item, group_score)
        total = np.bincount(c_item, weights=np.exp(score - top[c_item]), minlength=n) + np.exp(far_score - top)
        total += np.bincount(groups.item, weights=np.exp(group_score - top[groups.item]), minlength=n)
        norm = top + np.log(total)
        group_mass = np.exp(group_score - norm[groups.item])
        rest = np.exp(far_score - norm) + np.bincount(groups.item, weights=group_mass, minlength=n)
        posterior = CandidatePosterior(
            c_item=c_item,
            c_label=c_label,
            prob=np.exp(score - norm[c_item]),
            unproposed=np.where(proposed, rest, 1.0),
            indptr=indptr,
        )
        return posterior, pairs, replace(groups, mass=group_mass)

    def _unnamed_siblings(
        self,
        opinions: Opinions,
        log_right: np.ndarray,
        log_wrong: np.ndarray,
        c_item: np.ndarray,
        c_label: np.ndarray,
        n: int,
    ) -> UnnamedSiblings:
        """Per item and parent of one of its answers, the children of that parent nobody named: a
        wrong answer names one of them (a sibling) more often than a label elsewhere, and an answer
        that named their parent or an ancestor of it is right about them, so they share a term of
        their own. ``score``: the log of their summed likelihood (count times each one's)."""
        shape = self.wrong_answers
        k = len(self.labels)
        under = shape.parent[opinions.label]
        keys = np.unique((opinions.item * (k + 1) + under)[shape.children[under] > 1])
        item, parent = keys // (k + 1), keys % (k + 1)
        named = np.sort(c_item * (k + 1) + shape.parent[c_label])
        count = shape.children[parent] - (np.searchsorted(named, keys, "right") - np.searchsorted(named, keys, "left"))
        starts = np.searchsorted(item, np.arange(n + 1))
        answer, rank = runs(np.diff(starts)[opinions.item])  # every (answer, group of its item) pair
        group = starts[opinions.item[answer]] + rank
        sibling = under[answer] == parent[group]
        real = parent[group] < k  # the virtual root is nobody's answer
        consistent = real & self._covers(opinions.label[answer], np.where(real, parent[group], 0))
        wrong = log_wrong[answer] + shape.log_given(sibling, parent[group])
        vague = self.vague_answers.log_below(np.where(real, parent[group], 0))  # an ancestor of each child
        value = np.where(consistent, log_right[answer] + vague, wrong)
        score = np.bincount(group, weights=value, minlength=len(keys)).astype(np.float64)
        score = np.where(count > 0, score + np.log(np.maximum(count, 1)), -np.inf)
        pairs = Pairs(
            answer=answer, target=group, consistent=consistent, sibling=sibling, exact=np.zeros_like(real), vague=real
        )
        return UnnamedSiblings(item=item, parent=parent, count=np.maximum(count, 0), score=score, pairs=pairs)

    def answer_outcomes(self, opinions: Opinions) -> AnswerOutcomes:
        """Per hard answer, the posterior probability that it is right (the mass of the labels it is
        consistent with: the E-step's expected agreement of one-coin EM), that it is wrong and
        names a sibling of the truth (the E-step of the sibling share), that it is right about a
        truth with ancestors, and right but names one of them (the E-step of the vague share;
        ``fitting.fit_skills``)."""
        posterior, pairs, groups = self._posterior(opinions)
        n = len(opinions.item)
        right, sibling, could, vague = (np.zeros(n) for _ in range(4))
        for these, mass in ((pairs, posterior.prob), (groups.pairs, groups.mass)):
            weight = mass[these.target]
            right += np.bincount(these.answer, weights=weight * these.consistent, minlength=n)
            sibling += np.bincount(these.answer, weights=weight * these.sibling, minlength=n)
            deep = weight * (these.consistent & these.vague)
            could += np.bincount(these.answer, weights=deep, minlength=n)
            vague += np.bincount(these.answer, weights=deep * ~these.exact, minlength=n)
        return AnswerOutcomes(right, sibling, could, vague)

    def _pairs(self, opinions: Opinions, c_label: np.ndarray, indptr: np.ndarray, per_item: np.ndarray) -> Pairs:
        """Every (answer, candidate of its item) pair (``Pairs``: consistent, $a \\preceq k$)."""
        answer, rank = runs(per_item[opinions.item])
        pair_cand = indptr[opinions.item[answer]] + rank
        answered, candidate = opinions.label[answer], c_label[pair_cand]
        consistent = self._covers(answered, candidate)
        sibling = ~consistent & self.wrong_answers.siblings(answered, candidate)
        exact = answered == candidate
        deep = self.vague_answers.depth[candidate] > 1
        return Pairs(answer=answer, target=pair_cand, consistent=consistent, sibling=sibling, exact=exact, vague=deep)

    def _covers(self, answered: np.ndarray, label: np.ndarray) -> np.ndarray:
        """Per pair, whether the answer is right if ``label`` is the truth ($a \\preceq k$): it is
        the label or, in a taxonomy, an ancestor of it."""
        covers = answered == label
        if self._taxonomy is not None and len(answered):
            depth = self._taxonomy.depth[answered]
            ancestor = self._taxonomy.path_codes[label, np.minimum(depth, self._taxonomy.max_depth) - 1]
            covers |= (ancestor == answered) & (self._taxonomy.depth[label] >= depth)
        return covers

    @staticmethod
    def _soft_scores(
        opinions: Opinions, c_item: np.ndarray, c_label: np.ndarray, indptr: np.ndarray, k: int, floor: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per candidate and per item (for one unproposed label) the tempered, renormalised log
        probability the model rows give: $\\tau \\log p - \\log \\sum_l p_l^\\tau$, the stored
        labels' probabilities and the rest shared equally by the other labels, each row first mixed
        with the uniform, $(1 - \\epsilon) p + \\epsilon / K$ (``floor``: ``Decider.model_floor``)."""
        rows, row_code = np.unique(opinions.soft_row, return_inverse=True)
        n_rows = len(rows)
        row_item = np.zeros(n_rows, dtype=np.int64)
        row_item[row_code] = opinions.soft_item
        tau = np.ones(n_rows)
        tau[row_code] = opinions.soft_temperature
        prob = np.maximum((1 - floor) * opinions.soft_prob + floor / k, EPS)
        stored = np.bincount(row_code, weights=prob, minlength=n_rows)
        n_stored = np.bincount(row_code, minlength=n_rows)
        n_rest = np.maximum(k - n_stored, 0)
        rest_log = np.log(np.maximum((1 - np.minimum(stored, 1)) / np.maximum(n_rest, 1), EPS))
        norm = np.log(
            np.bincount(row_code, weights=prob ** tau[row_code], minlength=n_rows) + n_rest * np.exp(tau * rest_log)
        )
        # every (row, candidate of its item) pair: the stored probability if any, else the rest
        per_item = np.diff(indptr)
        pair_row, rank = runs(per_item[row_item])
        pair_cand = indptr[row_item[pair_row]] + rank
        stored_key = row_code * k + opinions.soft_label
        order = np.argsort(stored_key, kind="stable")
        wanted = pair_row * k + c_label[pair_cand]
        at = np.minimum(np.searchsorted(stored_key[order], wanted), len(order) - 1)
        found = stored_key[order][at] == wanted
        log_p = np.where(found, np.log(prob[order][at]), rest_log[pair_row])
        value = tau[pair_row] * log_p - norm[pair_row]
        cand = np.bincount(pair_cand, weights=value, minlength=len(c_item))
        rest = np.bincount(row_item, weights=tau * rest_log - norm, minlength=len(per_item))
        return cand, rest

    def raw(self, opinions: Opinions) -> tuple[np.ndarray, np.ndarray]:
        """Leading label (code, -1 for none) and raw posterior confidence of every item."""
        return self.posterior(opinions).top()

    def calibrated_confidence(self, raw: np.ndarray, n: np.ndarray, *, pooled: bool = False) -> np.ndarray:
        """Raw posterior confidence of items with ``n`` answers mapped through the gold calibrator
        (``pooled``: its curve over every answer count)."""
        if self.calibrator is None:
            return raw
        return np.where(raw > 0, self.calibrator.predict(raw, n_answers=n, quantile=self.caution, pooled=pooled), 0.0)

    def forecast_confidence(self, raw: np.ndarray, n: np.ndarray) -> np.ndarray:
        """The calibrator's estimate (not its cautious quantile) for states after answers still to
        come: by then more gold will have been answered (``control``, gold still coming in)."""
        return np.where(raw > 0, self.calibrator.predict(raw, n_answers=n), 0.0)

    def states(self, opinions: Opinions) -> tuple[ItemStates, CandidatePosterior]:
        """Leading label, calibrated and raw confidence and answer count of every item."""
        posterior = self.posterior(opinions)
        label, raw = posterior.top()
        n = opinions.counts()
        return ItemStates(label, self.calibrated_confidence(raw, n), raw, n), posterior

    def decide(self, opinions: Opinions) -> Decisions:
        """The decision for every item of the batch (see ``Decisions``)."""
        states, posterior = self.states(opinions)
        second = runner_up(posterior)
        # an answered item whose leading label none of its answers backs waits for the answer that decides it
        waiting = (states.label >= 0) & (states.answers > 0) & ~self.backed(opinions, states.label)
        ahead = self._lookahead(
            states.raw_confidence,
            # the strongest alternative: the runner-up, or a label nobody named yet when the rest of
            # the mass outweighs it (after a poor annotator's answer the truth is most likely elsewhere)
            np.maximum(second, 1 - states.raw_confidence - second),
            states.answers,
            states.label >= 0,
            self.calibrated_confidence,
            self.forecast_confidence if self.calibrator is not None and self.caution is not None else None,
        )
        ahead = self._await_backing(ahead, waiting, states.answers)
        table = decide_arrays(states, self.policy, ahead, backed=~waiting)
        if self.policy.partial and (table.status == ESCALATED).any():  # only those may settle on a coarser label
            partial, partial_confidence = self.partial_acceptance(posterior, states.answers)
            partial = np.where(self.backed(opinions, partial) | (states.answers == 0), partial, -1)
            table = decide_arrays(
                states, self.policy, ahead, fallback_label=partial, fallback_confidence=partial_confidence,
                backed=~waiting,
            )  # fmt: skip
        open_ = table.status == MORE
        value = np.zeros(len(table.status))
        if open_.any():  # an item nobody answered, or a waiting one, has no leading label yet: one answer is
            # worth the most it can be
            leading = (table.label >= 0) & ~waiting
            value = priority(np.where(leading, table.confidence, 0.5), self.typical_skill, self.policy.prices.crowd)
        return Decisions(
            **{name: getattr(table, name) for name in Decided.__dataclass_fields__},
            priority=np.where(open_, value, 0.0),
            branch=self.branch(table.label),
        )

    def _await_backing(self, ahead: Outlook, waiting: np.ndarray, n: np.ndarray) -> Outlook:
        """The outlook of the ``waiting`` items (``n`` answers, none backing the leading label): not
        reached, and one more answer decides it (it backs the label, or sides with the people),
        while ``max_overlap`` allows one."""
        if not waiting.any():
            return ahead
        room = waiting & (n < self.policy.max_overlap)
        return replace(
            ahead,
            reached=ahead.reached & ~waiting,
            go_on=np.where(waiting, room, ahead.go_on),
            needed=np.where(waiting, np.where(room, 1.0, np.inf), ahead.needed),
            expected_answers=np.where(room, np.maximum(ahead.expected_answers, 1.0), ahead.expected_answers),
            expert_probability=np.where(waiting & ~room, 1.0, ahead.expert_probability),
        )

    def backed(self, opinions: Opinions, label: np.ndarray) -> np.ndarray:
        """Per item, whether a human answer backs ``label`` (a code, -1 none): the answer is the
        label or, in a taxonomy, a descendant of it (the person said at least as much)."""
        answered = opinions.label
        own = label[opinions.item] if len(opinions.item) else np.empty(0, dtype=np.int64)
        says_it = answered == own
        if self._taxonomy is not None and len(answered):  # the label is the answer's ancestor
            tree, mine = self._taxonomy, np.maximum(own, 0)
            says_it |= (tree.lca_depth(answered, mine) == tree.depth[mine]) & (tree.depth[answered] >= tree.depth[mine])
        says_it &= own >= 0
        return np.bincount(opinions.item[says_it], minlength=opinions.n_items) > 0

    def partial_acceptance(self, posterior: CandidatePosterior, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The deepest ancestor level whose calibrated confidence reaches the target (-1: none),
        for items with ``n`` human answers each.

        The leaf calibrator's pooled curve is applied to the ancestor's posterior mass: conservative,
        since a coarser label is right at least as often as a leaf label of the same confidence. Not
        its curve for the item's answer count: there a leaf mass just short of 1 is a torn vote
        among leaves (three answers, two for one leaf and one for its sibling), which says nothing
        of a branch all three answers named."""
        n_items = len(n)
        best = np.full(n_items, -1, dtype=np.int64)
        best_conf = np.zeros(n_items)
        labels = self._taxonomy
        if labels is None:
            return best, best_conf
        for depth in range(1, labels.max_depth):
            code, raw = posterior.ancestor_top(labels, depth)
            conf = self.calibrated_confidence(raw, n, pooled=True)
            ok = (conf >= self.policy.target) & (code >= 0) & (labels.depth[np.maximum(code, 0)] == depth)
            best = np.where(ok, code, best)
            best_conf = np.where(ok, conf, best_conf)
        return best, best_conf

    def branch(self, codes: np.ndarray) -> np.ndarray:
        """The depth-1 ancestor code of each label code (-1 for none or a flat label space)."""
        codes = np.asarray(codes, dtype=np.int64)
        if self._taxonomy is None:
            return np.full(len(codes), -1, dtype=np.int64)
        return np.where(codes >= 0, self._taxonomy.ancestor_at(np.maximum(codes, 0), 1), -1)


def runs(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For counts $c_0, c_1, \\dots$: each index $i$ repeated $c_i$ times, and beside it its rank
    $0, \\dots, c_i - 1$ (every pair of an owner and one of its slots, in order)."""
    owner = np.repeat(np.arange(len(counts)), counts)
    return owner, np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)


def runner_up(posterior: CandidatePosterior) -> np.ndarray:
    """Per item the probability of its second most probable candidate (0 for none)."""
    n = len(posterior.unproposed)
    out = np.zeros(n)
    if not len(posterior.prob):
        return out
    order = np.lexsort((posterior.c_label, -posterior.prob, posterior.c_item))
    item = posterior.c_item[order]
    rank = np.arange(len(order)) - np.searchsorted(item, item)
    second = rank == 1
    out[item[second]] = posterior.prob[order][second]
    return out


def opinions_of(
    answers: Answers, skill: np.ndarray, temperatures: np.ndarray | None = None, *, unseen_skill: float = 0.7
) -> Opinions:
    """The opinions of ``answers``: each hard answer weighed with ``skill[worker]`` (workers past
    the end of ``skill`` get ``unseen_skill``), each soft row (a model) with the stored entries of
    its probability row and ``temperatures[worker]`` (1 when not given)."""
    skill = np.asarray(skill, dtype=np.float64)
    padded = np.append(skill, unseen_skill)
    weight = padded[np.minimum(answers.worker, len(skill))]
    soft = None
    if answers.soft is not None and len(answers.soft):
        probs = answers.soft.probs.tocsr()
        row = np.repeat(np.arange(probs.shape[0]), np.diff(probs.indptr))
        tau = np.ones(answers.n_workers) if temperatures is None else np.asarray(temperatures, dtype=np.float64)
        soft = {
            "row": row,
            "item": answers.soft.item[row],
            "label": probs.indices,
            "prob": probs.data,
            "temperature": tau[answers.soft.worker[row]],
        }
    return Opinions.of(answers.n_items, answers.item, answers.label, weight, soft)
