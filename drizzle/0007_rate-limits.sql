CREATE TABLE "rate_limits" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "rate_limits_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"scope" text NOT NULL,
	"match" text DEFAULT '*' NOT NULL,
	"route" text DEFAULT '' NOT NULL,
	"max" integer NOT NULL,
	"window_seconds" integer NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rate_limits_rule_key" UNIQUE("scope","match","route"),
	CONSTRAINT "rate_limits_scope_check" CHECK ("rate_limits"."scope" in ('global', 'ip', 'api_key', 'client', 'route')),
	CONSTRAINT "rate_limits_max_check" CHECK ("rate_limits"."max" > 0),
	CONSTRAINT "rate_limits_window_check" CHECK ("rate_limits"."window_seconds" > 0)
);
--> statement-breakpoint
CREATE INDEX "rate_limits_scope_idx" ON "rate_limits" USING btree ("scope","id");