import { Type, type Static } from '@sinclair/typebox';
import { PageQuerySchema } from '../../src/pagination.js';
import { IsoDate, StrictObject } from '../../src/schemas.js';

// Bodies and query strings are StrictObject (unknown fields are a 400 naming the field);
// every string has a length limit. Responses are plain Type.Object.

const Name = Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', description: 'unique; letters, digits, `.`, `_`, `-`' });
const Description = Type.String({ maxLength: 1000 });

export const TemplateItemSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  description: Type.String(),
  createdAt: IsoDate(),
  updatedAt: IsoDate(),
});
export type TemplateItem = Static<typeof TemplateItemSchema>;

export const CreateTemplateItemBody = StrictObject({
  name: Name,
  description: Type.Optional(Description),
});
export type CreateTemplateItem = Static<typeof CreateTemplateItemBody>;

export const UpdateTemplateItemBody = StrictObject({ name: Type.Optional(Name), description: Type.Optional(Description) }, { minProperties: 1 });
export type UpdateTemplateItem = Static<typeof UpdateTemplateItemBody>;

export const TemplateItemQuery = StrictObject({
  ...PageQuerySchema.properties,
  namePrefix: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'only items whose name starts with this' })),
});
export type TemplateItemFilter = Static<typeof TemplateItemQuery>;
