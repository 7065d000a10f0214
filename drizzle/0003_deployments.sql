CREATE TABLE "deployment_profiles" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "deployment_profiles_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"name" text NOT NULL,
	"environment" text NOT NULL,
	"base_url" text NOT NULL,
	"current_version" text,
	"last_deployed_at" timestamp with time zone,
	"smoke_checks" jsonb NOT NULL,
	"concurrency" integer DEFAULT 4 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "deployment_profiles_name_key" UNIQUE("name")
);
--> statement-breakpoint
CREATE TABLE "deployments" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "deployments_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"profile_id" bigint NOT NULL,
	"version" text NOT NULL,
	"commit_sha" text,
	"environment" text NOT NULL,
	"deployed_by" text NOT NULL,
	"notes" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "smoke_runs" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "smoke_runs_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"profile_id" bigint NOT NULL,
	"deployment_id" bigint,
	"status" text DEFAULT 'queued' NOT NULL,
	"base_url" text NOT NULL,
	"checks" jsonb NOT NULL,
	"concurrency" integer NOT NULL,
	"requested_by" text NOT NULL,
	"traceparent" text,
	"claimed_until" timestamp with time zone,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"total_checks" integer NOT NULL,
	"passed_checks" integer DEFAULT 0 NOT NULL,
	"failed_checks" integer DEFAULT 0 NOT NULL,
	"verdict" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "smoke_runs_status_check" CHECK ("smoke_runs"."status" in ('queued', 'running', 'passed', 'failed', 'error'))
);
--> statement-breakpoint
CREATE TABLE "smoke_test_results" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "smoke_test_results_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"run_id" bigint NOT NULL,
	"check_name" text NOT NULL,
	"method" text NOT NULL,
	"url" text NOT NULL,
	"status_code" integer,
	"latency_ms" integer,
	"passed" boolean NOT NULL,
	"error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "deployments" ADD CONSTRAINT "deployments_profile_id_deployment_profiles_id_fk" FOREIGN KEY ("profile_id") REFERENCES "public"."deployment_profiles"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "smoke_runs" ADD CONSTRAINT "smoke_runs_profile_id_deployment_profiles_id_fk" FOREIGN KEY ("profile_id") REFERENCES "public"."deployment_profiles"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "smoke_runs" ADD CONSTRAINT "smoke_runs_deployment_id_deployments_id_fk" FOREIGN KEY ("deployment_id") REFERENCES "public"."deployments"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "smoke_test_results" ADD CONSTRAINT "smoke_test_results_run_id_smoke_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."smoke_runs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "deployment_profiles_environment_idx" ON "deployment_profiles" USING btree ("environment","id");--> statement-breakpoint
CREATE INDEX "deployments_profile_idx" ON "deployments" USING btree ("profile_id","id");--> statement-breakpoint
CREATE INDEX "smoke_runs_profile_idx" ON "smoke_runs" USING btree ("profile_id","id");--> statement-breakpoint
CREATE INDEX "smoke_runs_deployment_idx" ON "smoke_runs" USING btree ("deployment_id");--> statement-breakpoint
CREATE INDEX "smoke_runs_status_idx" ON "smoke_runs" USING btree ("status","id");--> statement-breakpoint
CREATE INDEX "smoke_test_results_run_idx" ON "smoke_test_results" USING btree ("run_id","id");