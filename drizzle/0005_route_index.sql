CREATE TABLE "route_index" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "route_index_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"version" text NOT NULL,
	"method" text NOT NULL,
	"url" text NOT NULL,
	"pack" text,
	"summary" text,
	"tags" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"scope" text,
	"public" boolean NOT NULL,
	"shield" boolean NOT NULL,
	"rate_limited" boolean NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "route_index_version_route_key" UNIQUE("version","method","url")
);
--> statement-breakpoint
CREATE TABLE "route_index_versions" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "route_index_versions_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"version" text NOT NULL,
	"instance_id" text NOT NULL,
	"route_count" bigint NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "route_index_versions_version_key" UNIQUE("version")
);
--> statement-breakpoint
ALTER TABLE "route_index" ADD CONSTRAINT "route_index_version_route_index_versions_version_fk" FOREIGN KEY ("version") REFERENCES "public"."route_index_versions"("version") ON DELETE cascade ON UPDATE no action;