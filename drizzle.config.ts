import { defineConfig } from 'drizzle-kit';

// Every table the kernel and its packs own: the kernel's in src/**/table.ts, each pack's in
// plugins/<pack>/table.ts. drizzle-kit writes one ordered migration set into drizzle/, applied
// identically on PGlite and PostgreSQL.
export default defineConfig({
  dialect: 'postgresql',
  schema: ['./src/**/table.ts', './plugins/*/table.ts'],
  out: './drizzle',
  strict: true,
  verbose: false,
});
