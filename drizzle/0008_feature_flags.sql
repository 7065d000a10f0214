CREATE TABLE "feature_flags" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "feature_flags_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"key" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"type" text DEFAULT 'release' NOT NULL,
	"enabled" boolean DEFAULT false NOT NULL,
	"rollout_percentage" numeric(6, 3) DEFAULT 0 NOT NULL,
	"variants" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"rules" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"prerequisites" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"default_value" jsonb,
	"off_value" jsonb,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "feature_flags_key_key" UNIQUE("key"),
	CONSTRAINT "feature_flags_rollout_range" CHECK ("feature_flags"."rollout_percentage" >= 0 and "feature_flags"."rollout_percentage" <= 100)
);
--> statement-breakpoint
CREATE INDEX "feature_flags_type_id" ON "feature_flags" USING btree ("type","id");--> statement-breakpoint
CREATE INDEX "feature_flags_enabled_id" ON "feature_flags" USING btree ("enabled","id");--> statement-breakpoint
CREATE INDEX "feature_flags_key_pattern" ON "feature_flags" USING btree ("key" text_pattern_ops);