import { Type, type Static } from '@sinclair/typebox';
import { PageQuerySchema } from '../../src/pagination.js';
import { IsoDate, StrictObject } from '../../src/schemas.js';

// Bodies and query strings are StrictObject (unknown fields: 400 naming the field). What JSON
// Schema cannot say (weights summing to 100, at most 3 decimals, variants that exist,
// prerequisite cycles) is checked by the service and answered with 422.

export const FLAG_KEY_PATTERN = '^[a-z0-9][a-z0-9._-]{0,127}$';
export const VARIANT_KEY_PATTERN = '^[a-z0-9][a-z0-9._-]{0,63}$';

export const FLAG_TYPES = ['release', 'experiment', 'operational', 'kill-switch'] as const;
export const OPERATORS = [
  'in',
  'not_in',
  'equals',
  'not_equals',
  'starts_with',
  'ends_with',
  'contains',
  'gt',
  'gte',
  'lt',
  'lte',
  'semver_eq',
  'semver_gt',
  'semver_gte',
  'semver_lt',
  'semver_lte',
] as const;
export type Operator = (typeof OPERATORS)[number];

/** OpenFeature resolution reasons (https://openfeature.dev/specification/types#resolution-reason), plus PREREQUISITE_FAILED. */
export const REASONS = ['DISABLED', 'PREREQUISITE_FAILED', 'TARGETING_MATCH', 'SPLIT', 'DEFAULT', 'ERROR'] as const;
export type Reason = (typeof REASONS)[number];
/** OpenFeature error codes this engine can give. */
export const ERROR_CODES = ['FLAG_NOT_FOUND', 'TARGETING_KEY_MISSING', 'GENERAL'] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** A string enum, typed as the union of its values. */
const literals = <T extends readonly string[]>(values: T, description?: string) =>
  Type.Unsafe<T[number]>(Type.String({ enum: [...values], description }));

export const FlagKey = Type.String({ minLength: 1, maxLength: 128, pattern: FLAG_KEY_PATTERN, description: 'lowercase letters, digits, `.`, `_`, `-`; at most 128' });
const VariantKey = Type.String({ minLength: 1, maxLength: 64, pattern: VARIANT_KEY_PATTERN });
const Percentage = (description: string) => Type.Number({ minimum: 0, maximum: 100, description });
/** Any JSON value a flag can serve (bounded by BODY_LIMIT and a size check in the service). */
const JsonValue = Type.Unknown({ description: 'any JSON value' });

export const VariantSchema = StrictObject({
  key: VariantKey,
  weight: Percentage('share of the subjects in the rollout, 0-100, at most 3 decimals; all weights sum to 100'),
  value: JsonValue,
});
export type Variant = Static<typeof VariantSchema>;

/**
 * A string or a number. One JSON Schema `type` list rather than `anyOf`: with ajv's type
 * coercion, `anyOf: [string, number]` would turn 18 into "18" before the number branch is tried.
 */
const StringOrNumber = (maxLength: number) => Type.Unsafe<string | number>({ type: ['string', 'number'], maxLength });
const RuleValue = StringOrNumber(256);
export const RuleSchema = StrictObject({
  attribute: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]*$', description: 'context attribute name; `key` is the subject key' }),
  operator: literals(OPERATORS),
  values: Type.Array(RuleValue, { minItems: 1, maxItems: 1000, description: 'one value for equals/not_equals and the numeric and semver comparisons' }),
  variant: Type.Optional(VariantKey),
  rolloutPercentage: Type.Optional(Percentage('the rule applies to this share of the matching subjects (same bucket as the flag)')),
});
export type Rule = Static<typeof RuleSchema>;

export const PrerequisiteSchema = StrictObject({
  flagKey: FlagKey,
  variant: Type.Optional(VariantKey),
});
export type Prerequisite = Static<typeof PrerequisiteSchema>;

const FlagFields = {
  description: Type.String({ maxLength: 1000 }),
  type: literals(FLAG_TYPES, 'what the flag is for; informative, evaluation is the same for every type'),
  enabled: Type.Boolean({ description: 'false: the kill switch, every subject gets the off value' }),
  rolloutPercentage: Percentage('share of the subjects served, 0-100, at most 3 decimals'),
  variants: Type.Array(VariantSchema, { maxItems: 50, description: 'none: a boolean flag; otherwise weights sum to 100' }),
  rules: Type.Array(RuleSchema, { maxItems: 100, description: 'tried in order; the first that applies decides' }),
  prerequisites: Type.Array(PrerequisiteSchema, { maxItems: 20 }),
  defaultValue: JsonValue,
  offValue: JsonValue,
};

export const FlagSchema = Type.Object({
  id: Type.Integer(),
  key: Type.String(),
  description: Type.String(),
  type: literals(FLAG_TYPES),
  enabled: Type.Boolean(),
  rolloutPercentage: Type.Number(),
  variants: Type.Array(VariantSchema),
  rules: Type.Array(RuleSchema),
  prerequisites: Type.Array(PrerequisiteSchema),
  defaultValue: JsonValue,
  offValue: JsonValue,
  version: Type.Integer(),
  createdAt: IsoDate(),
  updatedAt: IsoDate(),
});
export type Flag = Static<typeof FlagSchema>;

/** Every settable field, optional: what a create may give and an update may change. */
const OptionalFlagFields = {
  description: Type.Optional(FlagFields.description),
  type: Type.Optional(FlagFields.type),
  enabled: Type.Optional(FlagFields.enabled),
  rolloutPercentage: Type.Optional(FlagFields.rolloutPercentage),
  variants: Type.Optional(FlagFields.variants),
  rules: Type.Optional(FlagFields.rules),
  prerequisites: Type.Optional(FlagFields.prerequisites),
  defaultValue: Type.Optional(FlagFields.defaultValue),
  offValue: Type.Optional(FlagFields.offValue),
};

export const CreateFlagBody = StrictObject({ key: FlagKey, ...OptionalFlagFields });
export type CreateFlag = Static<typeof CreateFlagBody>;

export const UpdateFlagBody = StrictObject(
  {
    ...OptionalFlagFields,
    expectedVersion: Type.Optional(Type.Integer({ minimum: 1, maximum: 2_147_483_647, description: 'refuse with 409 unless the flag is at this version' })),
  },
  { minProperties: 1 },
);
export type UpdateFlag = Static<typeof UpdateFlagBody>;

export const FlagKeyParams = StrictObject({ key: FlagKey });

export const FlagQuery = StrictObject({
  ...PageQuerySchema.properties,
  type: Type.Optional(literals(FLAG_TYPES)),
  enabled: Type.Optional(Type.Boolean()),
  keyPrefix: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[a-z0-9._-]+$', description: 'only flags whose key starts with this' })),
});
export type FlagFilter = Static<typeof FlagQuery>;

// Evaluation

const AttributeValue = Type.Unsafe<string | number | boolean | Array<string | number>>({
  type: ['string', 'number', 'boolean', 'array'],
  maxLength: 1024,
  items: StringOrNumber(1024),
  maxItems: 100,
  description: 'a string, number, boolean, or a list of strings and numbers',
});
const SubjectKey = Type.String({ minLength: 1, maxLength: 256 });

export const EvaluationContextSchema = StrictObject({
  key: Type.Optional(SubjectKey),
  targetingKey: Type.Optional(SubjectKey),
  attributes: Type.Optional(
    Type.Record(Type.String({ maxLength: 64, pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]*$' }), AttributeValue, { maxProperties: 50, additionalProperties: false }),
  ),
});
export type EvaluationContextBody = Static<typeof EvaluationContextSchema>;

export const EVALUATE_MAX_KEYS = 500;
export const EvaluateBody = StrictObject({
  context: EvaluationContextSchema,
  flags: Type.Optional(Type.Array(FlagKey, { maxItems: EVALUATE_MAX_KEYS, uniqueItems: true, description: 'flag keys; all flags when omitted' })),
});

export const EvaluationSchema = Type.Object({
  key: Type.String(),
  value: JsonValue,
  variant: Type.Union([Type.String(), Type.Null()]),
  reason: literals(REASONS),
  errorCode: Type.Optional(literals(ERROR_CODES)),
  ruleIndex: Type.Optional(Type.Integer({ description: 'the targeting rule that decided (TARGETING_MATCH)' })),
  prerequisite: Type.Optional(Type.String({ description: 'the prerequisite that was not met (PREREQUISITE_FAILED)' })),
});

export const BulkEvaluationSchema = Type.Object({ flags: Type.Array(EvaluationSchema) });

/** `GET /system/flags/:key/evaluate?subject=u-1&attr.country=NZ&attr.groups=a&attr.groups=b`. */
export const EvaluateQuery = Type.Object(
  { subject: Type.Optional(SubjectKey) },
  {
    additionalProperties: false,
    patternProperties: {
      '^attr\\.[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$': Type.Union([Type.String({ maxLength: 1024 }), Type.Array(Type.String({ maxLength: 1024 }), { maxItems: 100 })]),
    },
    maxProperties: 51,
    description: '`subject` is the subject key; each `attr.<name>` is an attribute (string; repeat it for a list)',
  },
);
