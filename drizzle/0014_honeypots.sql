CREATE TABLE "honeypot_hit_rollups" (
	"period" integer NOT NULL,
	"bucket" timestamp with time zone NOT NULL,
	"honeypot_id" bigint NOT NULL,
	"hits" bigint NOT NULL,
	CONSTRAINT "honeypot_hit_rollups_pkey" PRIMARY KEY("period","bucket","honeypot_id")
);
--> statement-breakpoint
CREATE TABLE "honeypot_instances" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "honeypot_instances_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"name" text NOT NULL,
	"type" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"path" text,
	"response_status" smallint DEFAULT 404 NOT NULL,
	"response_content_type" text DEFAULT 'text/plain; charset=utf-8' NOT NULL,
	"response_body" text DEFAULT '' NOT NULL,
	"key_id" text,
	"secret_hash" text,
	"auto_block" boolean DEFAULT false NOT NULL,
	"block_ttl_seconds" integer,
	"severity" text DEFAULT 'high' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "honeypot_instances_name_key" UNIQUE("name"),
	CONSTRAINT "honeypot_instances_path_key" UNIQUE("path"),
	CONSTRAINT "honeypot_instances_key_id_key" UNIQUE("key_id"),
	CONSTRAINT "honeypot_instances_shape" CHECK (("honeypot_instances"."type" = 'path' and "honeypot_instances"."path" is not null and "honeypot_instances"."key_id" is null) or ("honeypot_instances"."type" = 'canary_key' and "honeypot_instances"."key_id" is not null and "honeypot_instances"."secret_hash" is not null and "honeypot_instances"."path" is null))
);
--> statement-breakpoint
CREATE TABLE "honeypot_source_rollups" (
	"period" integer NOT NULL,
	"source_ip" text NOT NULL,
	"bucket" timestamp with time zone NOT NULL,
	"hits" bigint NOT NULL,
	CONSTRAINT "honeypot_source_rollups_pkey" PRIMARY KEY("period","source_ip","bucket")
);
--> statement-breakpoint
CREATE TABLE "honeypot_telemetry" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "honeypot_telemetry_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"honeypot_id" bigint NOT NULL,
	"occurred_at" timestamp with time zone NOT NULL,
	"source_ip" text NOT NULL,
	"user_agent" text,
	"method" text NOT NULL,
	"path" text NOT NULL,
	"headers" jsonb NOT NULL,
	"correlation_id" text NOT NULL
);
--> statement-breakpoint
CREATE INDEX "honeypot_source_rollups_top_idx" ON "honeypot_source_rollups" USING btree ("period","bucket","hits" DESC NULLS LAST,"source_ip");--> statement-breakpoint
CREATE INDEX "honeypot_telemetry_honeypot_id_idx" ON "honeypot_telemetry" USING btree ("honeypot_id","id");--> statement-breakpoint
CREATE INDEX "honeypot_telemetry_occurred_at_idx" ON "honeypot_telemetry" USING btree ("occurred_at");