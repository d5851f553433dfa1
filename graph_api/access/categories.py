"""Categories of personal data, and how a field's category is found."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum(description="Categories of personal data, after GDPR's language.")
class PiiCategory(Enum):
    CONTACT = "CONTACT"
    IDENTITY = "IDENTITY"
    LOCATION = "LOCATION"
    DEVICE = "DEVICE"
    FINANCIAL = "FINANCIAL"
    UNCLASSIFIED = "UNCLASSIFIED"


@strawberry.enum(description="How a field's category is found when it depends on the data.")
class PiiClassifier(Enum):
    IDENTIFIER_KIND = "IDENTIFIER_KIND"
    """by the identifier's kind: email and phone CONTACT, ids DEVICE, custom kinds by config"""
    TRAIT_NAME = "TRAIT_NAME"
    """one trait's value, classified by the trait's name in config"""
    TRAIT_KEY = "TRAIT_KEY"
    """a JSON map of traits, classified key by key in config"""
    EVENT_PROPERTY = "EVENT_PROPERTY"
    """a JSON map of event properties, classified key by key in config"""
    COMPUTED_TRAIT = "COMPUTED_TRAIT"
    """a JSON map of computed trait values, each classified as the event property its
    definition aggregates (counts and times carry no personal value)"""
    AUDIENCE_CONDITION = "AUDIENCE_CONDITION"
    """an audience condition tree: the literal values it tests, classified as the trait,
    computed trait or event property they are compared with"""
    MEMBERSHIP_EXPLANATION = "MEMBERSHIP_EXPLANATION"
    """an audience condition tree with the values each node saw: trait values classified by
    trait name, computed values as `COMPUTED_TRAIT`"""
