"""Surviving mutants of `gibbous/core` that no test can kill, with the reason.

`python -m bench.mutation` marks a survivor listed here as equivalent in its report (and
leaves it out of the "without equivalents" score). A mutant is equivalent when the changed
program behaves the same for every input the code can receive; the reason says why. The
names are mutmut's (module, function, number) and change when the function does: a listed
name that no longer survives, or now names another change, must be re-checked.
"""

from __future__ import annotations

_RE2_MESSAGE = (
    "RE2's errors always carry one argument, a non-empty UTF-8 message as bytes (it quotes "
    "the UTF-8 pattern), so the no-argument default, the str() branch, the decode error "
    "handler and the fallback text are never used"
)
_UNSIGNED = (
    "parse_quantity passes the magnitude without its sign (the sign is applied after "
    "rounding) and a magnitude already on the nano grid, zero included, returns early, so "
    "`value` is always > 0 here"
)
_MEMO = (
    "the memo is a shortcut: without its answer the same parse runs and gives the same "
    "value or error (only slower)"
)

_SHARING = (
    "sharing equal values is an identity optimisation: this only decides whether two equal "
    "values share one object (key order, or a value of exactly the size limit); every "
    "reader sees an equal value either way"
)

_UNREACHABLE_REQUESTS_ERROR = (
    "pod_requests raises only quantity errors (to_millis/to_units on one quantity of the "
    "containers', init containers', overhead's or pod-level lists), and quantity_problems "
    "has just parsed each of those quantities alone with the same code: when it found none, "
    "pod_requests cannot raise, so this message is never built"
)
_UNMANAGED_LABEL = (
    "the second value (add the managed label) is read only for a managed pod: validate_pod "
    "drops it and plan_mutation returns before reading it when the first is False"
)
_CEILING = (
    "compared with a whole number m, ceil(g / s) > m exactly when g / s > m, so true "
    "division decides the same as the ceiling"
)

EQUIVALENT: dict[str, str] = {
    # grammar
    "gibbous.core.grammar.quantity.x__scan__mutmut_7": (
        "pos is 0 and the text is never empty here (parse_quantity refuses an empty text "
        "before scanning), so `pos <= end` and `pos < end` agree"
    ),
    "gibbous.core.grammar.quantity.x__round_to_nano__mutmut_15": _UNSIGNED,
    "gibbous.core.grammar.quantity.x__round_to_nano__mutmut_16": _UNSIGNED,
    "gibbous.core.grammar.quantity.x__round_to_nano__mutmut_18": _UNSIGNED,
    "gibbous.core.grammar.quantity.x__convert__mutmut_1": _MEMO,
    "gibbous.core.grammar.quantity.x__convert__mutmut_2": _MEMO,
    **{
        f"gibbous.core.grammar.pattern.x_compile_pattern__mutmut_{n}": _RE2_MESSAGE
        for n in (10, 12, 15, 17, 18, 19, 22, 23, 24)
    },
    "gibbous.core.grammar.gotemplate.x__pieces__mutmut_2": (
        "str.find, str.count and slicing read a start of None as 0, the value it replaces"
    ),
    # podmodel
    "gibbous.core.podmodel.slim.x__shared__mutmut_9": _SHARING,
    "gibbous.core.podmodel.slim.x__shared__mutmut_12": _SHARING,
    # settings
    "gibbous.core.settings.userdata.x_to_toml__mutmut_24": (
        "`out` is the empty string when this line runs (it is set just before and nothing "
        "adds to it in between), so `out =` and `out +=` give the same text"
    ),
    # choice
    "gibbous.core.choice.ocilive.x__shape__mutmut_32": (
        'the fallback text only feeds the `"ampere" in processor` test, which neither "" '
        'nor "XXXX" passes: both read as amd64'
    ),
    # planning
    "gibbous.core.planning.interpod.xǁ_Counterǁadd__mutmut_6": (
        "`matched` is only compared with 0 (the first pod of a self-affine group); pods are "
        "removed only by Topology.decide(), which adds the same pods back to the decided "
        "site, one every counter includes when it included the undecided one, so "
        "`matched = 1` is 0 exactly when `matched += 1` is"
    ),
    # lifecycle
    "gibbous.core.lifecycle.consolidation.x_plan_replacement__mutmut_43": (
        "`after >= before - 1e-9` and `after > before - 1e-9` differ only when the new nodes' "
        "float price sum is exactly 1e-9 below the old one's: the boundary of the tolerance "
        "for float noise itself (a same-price replacement, after == before, is refused by "
        "both, tested). Not provably unreachable (GCP prices nano-dollars), but a saving of "
        "one nano-dollar an hour is refused anyway by any minSavingsPercent above 0"
    ),
    "gibbous.core.lifecycle.launches.x_adopt__mutmut_8": (
        'a missing placement label reads as None instead of ""; neither is bin-pack or '
        "bin-select, so both fall to bin-pack"
    ),
    # admission
    "gibbous.core.admission.mutation.x_parse_taint__mutmut_3": (
        "partition and rpartition on ':' agree on a text with one ':': every text parsed is "
        "a spotTolerations entry (validated: a qualified-name key and a label value, neither "
        "of which may hold ':', tested), a default of keys without one, or the dev "
        "cluster's kubelet flags rendered by taint_text, which validates the same way"
    ),
    "gibbous.core.admission.validation.x__gke_time_sharing_problems__mutmut_43": (
        "`resources` is a mapping here (the line before replaces anything else with {}), so "
        "the isinstance test is always true"
    ),
    "gibbous.core.admission.mutation.x_is_managed__mutmut_4": _UNMANAGED_LABEL,
    "gibbous.core.admission.mutation.x_is_managed__mutmut_15": _UNMANAGED_LABEL,
    "gibbous.core.admission.mutation.x_plan_release__mutmut_55": (
        "the gates are copied only to be the `test` operation's value; the copy and the "
        "pod's own entries are equal, and nothing changes either before the patch is sent"
    ),
    "gibbous.core.admission.mutation.x_plan_mutation__mutmut_27": (
        "_Patch never reads its `pod` field: its methods are given the part of the pod they patch"
    ),
    "gibbous.core.admission.mutation.x_plan_mutation__mutmut_57": (
        '`constraints` is then read only by `if constraints`, where "" and None are both false'
    ),
    "gibbous.core.admission.validation.x__gke_time_sharing_problems__mutmut_33": (
        "the isinstance test where `values` is read turns a `resources` that is not a mapping "
        "into no values, as this one would"
    ),
    "gibbous.core.admission.validation.x_validate_pod__mutmut_26": _UNREACHABLE_REQUESTS_ERROR,
    "gibbous.core.admission.validation.x_validate_pod__mutmut_27": _UNREACHABLE_REQUESTS_ERROR,
    "gibbous.core.admission.validation.x_validate_pod__mutmut_51": _CEILING,
    "gibbous.core.admission.validation.x_validate_pod__mutmut_49": _CEILING,
}

_IMPORT_TIME = (
    "mutmut cannot switch this mutant on: `_compare` runs only while the module is imported "
    "(to build FUNCTIONS), before mutmut chooses a mutant. Applied by hand (`mutmut apply` "
    "in the scratch copy), it fails tests/core/test_grammar_cases.py::test_comparisons"
)

# Survivors that a test does kill when the change is made in the source by hand, but that
# mutmut's switch (chosen at call time) cannot reach; the report counts them as killed in
# the adjusted score, with this reason.
_SCHEMA_AT_IMPORT = (
    "mutmut cannot switch this mutant on: `_compile` builds the pod-spec predicate while "
    "podschema is imported, before mutmut chooses a mutant. Applied by hand (`mutmut "
    "apply` in the scratch copy), it fails tests/core/test_podmodel_mutants.py::"
    "test_required_fields_of_a_node_selector_requirement"
)

KILLED_BY_HAND: dict[str, str] = {
    "gibbous.core.podmodel.podschema.x__compile__mutmut_49": _SCHEMA_AT_IMPORT,
    "gibbous.core.grammar.gotemplate.x__compare__mutmut_1": _IMPORT_TIME,
    "gibbous.core.grammar.gotemplate.x__compare__mutmut_6": _IMPORT_TIME,
}
