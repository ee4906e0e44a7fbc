"""The ``[[validators]]`` entries a policy may hold, and how each becomes its validator.

A union tagged by ``kind``. Each kind's fields are its factory's keyword parameters (under the
same names but for a few, which its ``build`` maps), and its ``build`` is the one place that
calls the factory: ``tests/test_validator_specs.py`` checks the two agree, name and default.
"""

from __future__ import annotations

import inspect
from abc import abstractmethod
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, Field, PositiveInt

from cascade.errors import ConfigError
from cascade.policy.fields import Context, FieldError, imported, price_of, relative
from cascade.policy.spec_base import STRICT, PriceSpec
from cascade.validators import (
    Limits,
    Validator,
    agreement,
    compiles,
    confidence,
    function_call,
    grounded,
    json_schema,
    judge,
    matches,
    mypy_clean,
    not_missing,
    one_of,
    passes_tests,
    pydantic_model,
    self_consistency,
    vote,
)
from cascade.validators.agreement import Compare

__all__ = ["ValidatorSpec"]


class _Kind(BaseModel):
    model_config = STRICT
    kind: str

    @abstractmethod
    def build(self, context: Context) -> Validator:
        """The validator this entry describes."""


class JsonSchemaSpec(_Kind):
    """``json_schema``: a schema file (relative to the policy), an inline table, or none.

    With no schema, each task's own ``schema`` field is used.
    """

    kind: Literal["json_schema"]
    schema_: Annotated[str | dict[str, Any] | None, Field(alias="schema")] = None

    def build(self, context: Context) -> Validator:
        """:func:`~cascade.validators.json_schema` of the file, the table, or each task's."""
        schema = self.schema_
        try:
            found = relative(context.base, schema, "schema") if isinstance(schema, str) else schema
            return json_schema(found)
        except FieldError:
            raise
        except ConfigError as exc:
            raise FieldError("schema", str(exc)) from exc


class PydanticSpec(_Kind):
    """``pydantic``: a model class named as ``module:Model``."""

    kind: Literal["pydantic"]
    model: Annotated[str, Field(pattern=r"^[\w.]+:[\w.]+$")]

    def build(self, context: Context) -> Validator:
        """:func:`~cascade.validators.pydantic_model` of the class named."""
        del context
        model = imported(self.model, "model")
        if not (inspect.isclass(model) and issubclass(model, pydantic.BaseModel)):
            raise FieldError("model", f"{self.model} is not a pydantic model class")
        try:
            return pydantic_model(model)
        except ConfigError as exc:
            raise FieldError("model", str(exc)) from exc


class GroundedSpec(_Kind):
    """``grounded``: extracted values must occur in the input."""

    kind: Literal["grounded"]
    fields: list[str] | None = None
    source: str | None = None
    ignore_case: bool = True
    collapse_whitespace: bool = True
    numbers: bool = True
    dates: bool = True

    def build(self, context: Context) -> Validator:
        """:func:`~cascade.validators.grounded`."""
        del context
        return grounded(self.fields, source=self.source, ignore_case=self.ignore_case,
                        collapse_whitespace=self.collapse_whitespace, numbers=self.numbers,
                        dates=self.dates)  # fmt: skip


class CompilesSpec(_Kind):
    """``compiles``: the code compiles."""

    kind: Literal["compiles"]
    max_chars: PositiveInt = 100_000

    def build(self, context: Context) -> Validator:
        """:func:`~cascade.validators.compiles`."""
        del context
        return compiles(max_chars=self.max_chars)


class MypySpec(_Kind):
    """``mypy``: the code type-checks."""

    kind: Literal["mypy"]
    strict: bool = True
    allow_ignores: bool = False
    max_chars: PositiveInt = 100_000
    """Longer code is rejected unchecked."""

    def build(self, context: Context) -> Validator:
        """:func:`~cascade.validators.mypy_clean`."""
        del context
        return mypy_clean(strict=self.strict, allow_ignores=self.allow_ignores,
                          max_chars=self.max_chars)  # fmt: skip


class TestsSpec(_Kind):
    """``tests``: the code passes tests, from a file (relative to the policy) or the task."""

    kind: Literal["tests"]
    file: str | None = None
    snippets: list[str] | None = None
    setup: str = ""
    files: dict[str, str] = {}
    """Files beside the code under test, by name (data the tests read, a conftest)."""
    wall_s: Annotated[float, Field(gt=0)] = 10.0
    cpu_s: PositiveInt = 10
    memory_mb: PositiveInt = 1024
    max_chars: PositiveInt = 100_000
    """Longer code is rejected untested."""
    missing: Literal["fault", "fail"] = "fault"
    """What a task without tests gets: a fault (the job is misconfigured) or a plain failure."""
    isolated_tests_only: bool = True
    """Refuse the passes of tests run in the code's own process (``isolation = "in-process"``),
    which the code could have forged; ``false`` accepts them, marked ``self_reported``."""
    isolation: Literal["apart", "in-process"] = "apart"
    """Where the tests run: apart from the code (plain data through a proxy), or with it."""

    def build(self, context: Context) -> Validator:
        """:func:`~cascade.validators.passes_tests` (its verdicts kept in the context's cache)."""
        limits = Limits(wall_s=self.wall_s, cpu_s=self.cpu_s, memory_mb=self.memory_mb)
        if self.file is not None and self.snippets is not None:
            raise FieldError("file", "give tests as a file or as snippets, not both")
        tests: Path | list[str] | None = self.snippets
        if self.file is not None:
            tests = relative(context.base, self.file, "file")
        return passes_tests(tests, setup=self.setup, files=self.files or None, limits=limits,
                            max_chars=self.max_chars, missing=self.missing, cache=context.cache,
                            isolated_only=self.isolated_tests_only,
                            isolation=self.isolation)  # fmt: skip


class JudgeSpec(_Kind):
    """``judge``: an LLM judge with a rubric."""

    kind: Literal["judge"]
    rubric: Annotated[str, Field(min_length=1)]
    model: Annotated[str, Field(min_length=1)]
    reference: str | None = None
    """A reference answer the judge compares with, the same for every task."""
    reference_field: str | None = None
    threshold: Annotated[float, Field(ge=0, le=1)] = 0.5
    params: dict[str, Any] = {}
    """Sent with the judge's call (its ``api_base`` and key, say), as a tier's are."""
    price: PriceSpec | None = None

    def build(self, context: Context) -> Validator:
        """:func:`~cascade.validators.judge`."""
        del context
        return judge(self.rubric, model=self.model, reference=self.reference,
                     reference_field=self.reference_field, threshold=self.threshold,
                     params=self.params or None, price=price_of(self.price))  # fmt: skip


class OneOfSpec(_Kind):
    """``one_of``: the answer is one of the labels."""

    kind: Literal["one_of"]
    labels: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    ignore_case: bool = True

    def build(self, context: Context) -> Validator:
        """:func:`~cascade.validators.one_of`."""
        del context
        return one_of(self.labels, ignore_case=self.ignore_case)


class FunctionCallSpec(_Kind):
    """``function_call``: a call of one of the task's functions, with valid arguments."""

    kind: Literal["function_call"]

    def build(self, context: Context) -> Validator:
        """:func:`~cascade.validators.function_call`, checking against each task's functions."""
        del context
        return function_call()


class ConfidenceSpec(_Kind):
    """``confidence``: the model's own confidence reaches a threshold."""

    kind: Literal["confidence"]
    threshold: float

    def build(self, context: Context) -> Validator:
        """:func:`~cascade.validators.confidence`."""
        del context
        return confidence(self.threshold)


class NotMissingSpec(_Kind):
    """``not_missing``: a field must have a value when its pattern matches the input."""

    kind: Literal["not_missing"]
    fields: Annotated[dict[str, str], Field(min_length=1)]

    def build(self, context: Context) -> Validator:
        """:func:`~cascade.validators.not_missing` (its ``patterns``, by field)."""
        del context
        return not_missing(self.fields)


class MatchesSpec(_Kind):
    """``matches``: the answer has the required format (a regular expression is found in it)."""

    kind: Literal["matches"]
    pattern: Annotated[str, Field(min_length=1)]
    hint: str | None = None
    ignore_case: bool = False

    def build(self, context: Context) -> Validator:
        """:func:`~cascade.validators.matches`."""
        del context
        return matches(self.pattern, hint=self.hint, ignore_case=self.ignore_case)


class AgreementSpec(_Kind):
    """``agreement``: a second model answers the same task, and the answers must match."""

    kind: Literal["agreement"]
    model: Annotated[str, Field(min_length=1)]
    compare: Compare = "auto"
    price: PriceSpec | None = None
    params: dict[str, Any] = {}
    """Sent with the second model's call (its ``api_base`` and key, say), as a tier's are."""

    def build(self, context: Context) -> Validator:
        """:func:`~cascade.validators.agreement`."""
        del context
        return agreement(self.model, compare=self.compare, params=self.params,
                         price=price_of(self.price))  # fmt: skip


class VoteSpec(_Kind):
    """``vote``: other models answer the same task, and ``k`` of all the answers must agree."""

    kind: Literal["vote"]
    models: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    k: Annotated[int, Field(ge=2)] | None = None
    compare: Compare = "auto"
    params: dict[str, Any] = {}
    """Sent with every other model's call (``self`` is asked as its tier asks it)."""
    voter_params: dict[str, dict[str, Any]] = {}
    """A voter's own ``params``, by its model, in place of ``params`` (voters on two endpoints)."""
    voter_prices: dict[str, PriceSpec] = {}
    """A voter's price, by its model, for a model litellm's price map does not list."""

    def build(self, context: Context) -> Validator:
        """:func:`~cascade.validators.vote`."""
        del context
        prices = {m: p for m, v in self.voter_prices.items() if (p := price_of(v)) is not None}
        return vote(self.models, k=self.k, compare=self.compare, params=self.params,
                    voter_params=self.voter_params, voter_prices=prices)  # fmt: skip


class SelfConsistencySpec(_Kind):
    """``self_consistency``: more samples of the same model, ``k`` of the answers must agree."""

    kind: Literal["self_consistency"]
    samples: PositiveInt = 2
    k: Annotated[int, Field(ge=2)] | None = None
    compare: Compare = "auto"

    def build(self, context: Context) -> Validator:
        """:func:`~cascade.validators.self_consistency`."""
        del context
        return self_consistency(self.samples, k=self.k, compare=self.compare)


class PythonSpec(_Kind):
    """``python``: a user's factory, ``module:factory``, called with ``args``."""

    kind: Literal["python"]
    factory: Annotated[str, Field(pattern=r"^[\w.]+:[\w.]+$")]
    args: dict[str, Any] = {}

    def build(self, context: Context) -> Validator:
        """What the factory returns for ``args``, checked to be callable."""
        del context
        factory = imported(self.factory, "factory")
        if not callable(factory):
            raise FieldError("factory", f"{self.factory} is not callable")
        try:
            made = factory(**self.args)
        except (TypeError, ValueError, ConfigError) as exc:
            raise FieldError("args", f"{self.factory}(**args) failed: {exc}") from exc
        if not callable(made):
            kind = type(made).__name__
            raise FieldError("factory", f"{self.factory} returned {kind}, not a validator")
        return made  # type: ignore[no-any-return]  # checked callable; verdicts checked at run time


ValidatorSpec = Annotated[
    JsonSchemaSpec
    | PydanticSpec
    | GroundedSpec
    | CompilesSpec
    | MypySpec
    | TestsSpec
    | JudgeSpec
    | OneOfSpec
    | FunctionCallSpec
    | ConfidenceSpec
    | NotMissingSpec
    | MatchesSpec
    | AgreementSpec
    | VoteSpec
    | SelfConsistencySpec
    | PythonSpec,
    Field(discriminator="kind"),
]
