"""Computed trait values and membership explanations, as a role may see them.

A computed trait over an event property inherits that property's category, so the field
policy applies to it like to any other value: `sum` of `revenue` is FINANCIAL, `last` of
`product.name` the stricter of `product`'s and `name`'s. Counts and times (`event_count`,
`unique_count`, `first_seen`, `last_seen`) carry no personal value and read as they are.

An explanation of membership shows, at each node of the condition, what it saw: trait values
are rendered by the trait's category (as in `Customer.traits`), computed values as above;
event counts, whether an identifier kind is held, and consent state are not personal values.
A denied value reads null and is reported (`DeniedKeys`) at its place in the tree, and its
node's `holds` reads null too: whether a test of it held would tell what it hides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from graph_api.access.categories import PiiCategory
from graph_api.access.policy import Mode
from identity_graph.audiences.definitions import Kind
from identity_graph.audiences.store import ComputedTrait

if TYPE_CHECKING:
    from graph_api.access.pii import Access

NOT_PERSONAL = frozenset({Kind.EVENT_COUNT, Kind.UNIQUE_COUNT, Kind.FIRST_SEEN, Kind.LAST_SEEN})
Where = tuple[str | int, ...]


def aggregated(definition: Mapping[str, Any]) -> str | None:
    """The event property (a name or a dotted path) whose category a computed trait's values
    inherit; None when they carry no personal value; "" (UNCLASSIFIED) when unknown. The
    properties its `where` tests count too, as parts of a dotted path whose category is the
    strictest of its parts'.

    >>> aggregated({"kind": "sum", "event": "Order Completed", "property": "revenue"})
    'revenue'
    >>> aggregated({"kind": "unique_count", "property": "sku"}) is None
    True
    """
    tested = _tested(definition.get("where"))
    if definition.get("kind") in NOT_PERSONAL:
        # a count of the orders above some revenue tells about the revenue
        return ".".join(tested) if tested else None
    found = definition.get("property")
    return ".".join([found if isinstance(found, str) else "", *tested]).strip(".")


def _tested(where: Any) -> list[str]:
    """The properties a definition's `where` tests."""
    if not isinstance(where, list):
        return []
    return [str(t["property"]) for t in where if isinstance(t, dict) and "property" in t]


def sources(traits: Iterable[ComputedTrait]) -> dict[str, str | None]:
    """Each computed trait's `aggregated` property, by name."""
    return {trait.name: aggregated(trait.definition) for trait in traits}


def render_computed(
    access: Access,
    values: Mapping[str, Any],
    aggregates: Mapping[str, str | None],
    label: str,
    customer: str | None,
    where: Where,
) -> dict[str, Any]:
    """Computed trait values by name, each as the caller may see its property's values (a
    name not in `aggregates`, defined since, is UNCLASSIFIED)."""
    classify = access.policy.property_category
    shown: dict[str, Any] = {}
    for name, value in values.items():
        prop = aggregates.get(name, "")
        shown[name] = (
            value
            if prop is None
            else render_value(
                access, value, classify, prop, name, f"{label}.{name}", customer, where
            )
        )
    return shown


def render_explanation(
    access: Access,
    explanation: Mapping[str, Any],
    aggregates: Mapping[str, str | None],
    label: str,
    where: Where,
) -> dict[str, Any]:
    """An explanation (`AudienceEngine.explain`) with every value a node saw rendered for
    the caller."""
    customer = explanation.get("customerId")
    policy = access.policy

    def walk(node: Mapping[str, Any], at: str) -> dict[str, Any]:
        shown = dict(node)
        leaves = {k: node[k] for k in ("trait", "computed", "event") if k in node}
        if leaves:  # the literals the leaf tests, rendered like the condition's
            shown.update(render_condition(access, leaves, aggregates, label, where, f"{at}."))
        for group in ("all", "any"):
            if isinstance(node.get(group), list):
                shown[group] = [walk(c, f"{at}.{group}[{n}]") for n, c in enumerate(node[group])]
        if isinstance(node.get("not"), dict):
            shown["not"] = walk(node["not"], f"{at}.not")
        children = [*shown.get("all", []), *shown.get("any", [])]
        if isinstance(shown.get("not"), dict):
            children.append(shown["not"])
        if any(c.get("holds") is None for c in children):
            shown["holds"] = None  # it would tell what a hidden child's test gave
        leaf: tuple[Callable[[str], PiiCategory], str, str] | None = None
        if "event" in node:
            tested = _tested(node["event"].get("where"))
            if (
                tested
                and access.mode(category_of(access, policy.property_category, ".".join(tested)))
                is Mode.DENIED
            ):
                shown["holds"] = shown["seen"] = None  # a count of what the role may not read
        if "trait" in node:
            name = str(node["trait"].get("name", ""))
            leaf = (policy.trait_category, name, name)
        elif "computed" in node:
            name = str(node["computed"].get("name", ""))
            prop = aggregates.get(name, "")
            leaf = None if prop is None else (policy.property_category, prop, name)
        if leaf is not None:
            classify, key, name = leaf
            if access.mode(category_of(access, classify, key)) is Mode.DENIED:
                shown["holds"] = None  # whether the test held would tell what the value hides
            shown["seen"] = render_value(
                access, node.get("seen"), classify, key, f"{at}.seen", f"{label}.{name}",
                customer, where,
            )  # fmt: skip
        return shown

    shown = dict(explanation)
    if isinstance(explanation.get("condition"), dict):
        shown["condition"] = walk(explanation["condition"], "condition")
        if shown["condition"].get("holds") is None:
            shown["member"] = None  # membership would tell what the condition's answer hides
    return shown


def render_condition(
    access: Access,
    condition: Any,
    aggregates: Mapping[str, str | None],
    label: str,
    where: Where,
    at: str = "",
) -> Any:
    """A condition tree with the texts it tests rendered for the caller: a trait's as that
    trait's values, a computed trait's as the property it aggregates, a `where` test's as
    that property's (a condition naming an email would otherwise show it to any role that
    reads audiences). Numbers and flags are thresholds, shown as they are."""
    if not isinstance(condition, Mapping):
        return condition
    policy = access.policy
    shown = dict(condition)
    for group in ("all", "any"):
        if isinstance(condition.get(group), list):
            shown[group] = [
                render_condition(access, c, aggregates, label, where, f"{at}{group}[{n}].")
                for n, c in enumerate(condition[group])
            ]
    if isinstance(condition.get("not"), Mapping):
        shown["not"] = render_condition(
            access, condition["not"], aggregates, label, where, f"{at}not."
        )

    def literal(test: Any, classify: Callable[[str], PiiCategory], key: str, path: str) -> Any:
        if not isinstance(test, Mapping) or not textual(test.get("value")):
            return test  # a threshold, a flag: the definer's, not a customer's value
        rendered = dict(test)
        rendered["value"] = render_value(
            access, test["value"], classify, key, f"{path}.value", f"{label}.{key}", None, where
        )
        return rendered

    trait = condition.get("trait")
    if isinstance(trait, Mapping):
        name = str(trait.get("name", ""))
        shown["trait"] = literal(trait, policy.trait_category, name, f"{at}trait")
    computed = condition.get("computed")
    if isinstance(computed, Mapping):
        prop = aggregates.get(str(computed.get("name", "")), "")
        if prop is not None:
            shown["computed"] = literal(computed, policy.property_category, prop, f"{at}computed")
    event = condition.get("event")
    if isinstance(event, Mapping) and isinstance(event.get("where"), list):
        shown["event"] = dict(event)
        shown["event"]["where"] = [
            literal(
                test,
                policy.property_category,
                str(test.get("property", "")) if isinstance(test, Mapping) else "",
                f"{at}event.where[{n}]",
            )
            for n, test in enumerate(event["where"])
        ]
    return shown


def textual(value: Any) -> bool:
    """A literal that may be a customer's value (an email, a name, a list of them)."""
    if isinstance(value, list):
        return any(isinstance(v, str) for v in value)
    return isinstance(value, str)


def category_of(access: Access, classify: Callable[[str], PiiCategory], path: str) -> PiiCategory:
    """A key's category; a dotted path's is the stricter of its parts' (`product.price`)."""
    parts = [p for p in path.split(".") if p] or [path]
    category = classify(parts[0])
    for part in parts[1:]:
        category = access.stricter(classify(part), category)
    return category


def render_value(
    access: Access,
    value: Any,
    classify: Callable[[str], PiiCategory],
    key: str,
    at: str,
    label: str,
    customer: str | None,
    where: Where,
) -> Any:
    """One value of the trait or property `key`, as the caller may see it; a denied one
    reads null and is reported at `at` (its place in the JSON field at `where`), whether it
    has a value or not: a report only where there is a value would tell that there is one."""
    category = category_of(access, classify, key)
    if access.mode(category) is Mode.DENIED:
        access.deny(where, at, label)
        return None
    if value is None:
        return None
    if isinstance(value, dict):
        return access.render_tree(
            value, classify, label, customer, where, key=at, category=category
        )
    last = key.rsplit(".", 1)[-1]
    if isinstance(value, list):
        return [
            access.render_tree(item, classify, label, customer, where, key=f"{at}[{n}]",
                               category=category)
            if isinstance(item, dict | list)
            else access.render(item, category, label, customer, key=last)
            for n, item in enumerate(value)
        ]  # fmt: skip
    return access.render(value, category, label, customer, key=last)
