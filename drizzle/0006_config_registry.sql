CREATE TABLE "system_config" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "system_config_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"key" text NOT NULL,
	"environment" text NOT NULL,
	"value" jsonb NOT NULL,
	"type" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"version" integer NOT NULL,
	"updated_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "system_config_key_environment_key" UNIQUE("key","environment")
);
--> statement-breakpoint
CREATE TABLE "system_config_history" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "system_config_history_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"key" text NOT NULL,
	"environment" text NOT NULL,
	"version" integer NOT NULL,
	"operation" text NOT NULL,
	"value" jsonb,
	"type" text,
	"description" text,
	"restored_version" integer,
	"actor" text NOT NULL,
	"reason" text,
	"correlation_id" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "system_config_history_version_key" UNIQUE("key","environment","version")
);
--> statement-breakpoint
CREATE INDEX "system_config_environment_key_idx" ON "system_config" USING btree ("environment","key");--> statement-breakpoint
CREATE INDEX "system_config_history_key_id_idx" ON "system_config_history" USING btree ("key","id");--> statement-breakpoint
CREATE INDEX "system_config_history_key_environment_id_idx" ON "system_config_history" USING btree ("key","environment","id");