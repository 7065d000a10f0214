CREATE TABLE "admin_operations" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "admin_operations_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"occurred_at" timestamp with time zone NOT NULL,
	"actor_type" text NOT NULL,
	"actor_id" text,
	"key_id" text,
	"operation" text NOT NULL,
	"target_type" text NOT NULL,
	"target_id" text,
	"reason" text,
	"before" jsonb,
	"after" jsonb,
	"result" text DEFAULT 'success' NOT NULL,
	"correlation_id" text,
	"prev_hash" text NOT NULL,
	"hash" text NOT NULL,
	"chain_version" integer DEFAULT 1 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "job_queue" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "job_queue_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"name" text NOT NULL,
	"payload" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"status" text DEFAULT 'queued' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"max_attempts" integer DEFAULT 5 NOT NULL,
	"run_at" timestamp with time zone DEFAULT now() NOT NULL,
	"locked_by" text,
	"locked_until" timestamp with time zone,
	"last_error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "job_schedules" (
	"name" text PRIMARY KEY NOT NULL,
	"interval_ms" integer NOT NULL,
	"next_run_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_run_at" timestamp with time zone,
	"last_status" text,
	"last_error" text,
	"last_duration_ms" integer,
	"last_run_by" text,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "metrics_snapshots" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "metrics_snapshots_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"taken_at" timestamp with time zone DEFAULT now() NOT NULL,
	"instance_id" text NOT NULL,
	"figures" jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "error_events" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "error_events_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"occurred_at" timestamp with time zone DEFAULT now() NOT NULL,
	"kind" text NOT NULL,
	"message" text NOT NULL,
	"stack" text,
	"method" text NOT NULL,
	"route" text NOT NULL,
	"url" text NOT NULL,
	"status_code" integer NOT NULL,
	"correlation_id" text NOT NULL,
	"instance_id" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "system_logs" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "system_logs_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"occurred_at" timestamp with time zone DEFAULT now() NOT NULL,
	"level" text NOT NULL,
	"source" text NOT NULL,
	"event" text NOT NULL,
	"message" text NOT NULL,
	"correlation_id" text,
	"actor" text,
	"instance_id" text NOT NULL,
	"data" jsonb
);
--> statement-breakpoint
CREATE TABLE "trace_spans" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "trace_spans_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"trace_id" text NOT NULL,
	"span_id" text NOT NULL,
	"parent_span_id" text,
	"is_root" boolean DEFAULT false NOT NULL,
	"name" text NOT NULL,
	"kind" text DEFAULT 'server' NOT NULL,
	"started_at" timestamp with time zone NOT NULL,
	"duration_ms" double precision NOT NULL,
	"status" text DEFAULT 'unset' NOT NULL,
	"status_code" integer,
	"attributes" jsonb,
	"instance_id" text NOT NULL
);
--> statement-breakpoint
CREATE INDEX "admin_operations_occurred_idx" ON "admin_operations" USING btree ("occurred_at","id");--> statement-breakpoint
CREATE INDEX "admin_operations_operation_idx" ON "admin_operations" USING btree ("operation","id");--> statement-breakpoint
CREATE INDEX "admin_operations_actor_idx" ON "admin_operations" USING btree ("actor_id","id");--> statement-breakpoint
CREATE INDEX "admin_operations_target_idx" ON "admin_operations" USING btree ("target_type","target_id","id");--> statement-breakpoint
CREATE INDEX "admin_operations_correlation_idx" ON "admin_operations" USING btree ("correlation_id");--> statement-breakpoint
CREATE INDEX "job_queue_due_idx" ON "job_queue" USING btree ("status","run_at");--> statement-breakpoint
CREATE INDEX "job_queue_name_idx" ON "job_queue" USING btree ("name","id");--> statement-breakpoint
CREATE INDEX "metrics_snapshots_taken_idx" ON "metrics_snapshots" USING btree ("taken_at","id");--> statement-breakpoint
CREATE INDEX "metrics_snapshots_instance_idx" ON "metrics_snapshots" USING btree ("instance_id","id");--> statement-breakpoint
CREATE INDEX "error_events_occurred_idx" ON "error_events" USING btree ("occurred_at","id");--> statement-breakpoint
CREATE INDEX "error_events_kind_idx" ON "error_events" USING btree ("kind","id");--> statement-breakpoint
CREATE INDEX "error_events_route_idx" ON "error_events" USING btree ("route","id");--> statement-breakpoint
CREATE INDEX "error_events_correlation_idx" ON "error_events" USING btree ("correlation_id");--> statement-breakpoint
CREATE INDEX "system_logs_occurred_idx" ON "system_logs" USING btree ("occurred_at","id");--> statement-breakpoint
CREATE INDEX "system_logs_level_idx" ON "system_logs" USING btree ("level","id");--> statement-breakpoint
CREATE INDEX "system_logs_source_idx" ON "system_logs" USING btree ("source","id");--> statement-breakpoint
CREATE INDEX "system_logs_event_idx" ON "system_logs" USING btree ("event","id");--> statement-breakpoint
CREATE INDEX "system_logs_correlation_idx" ON "system_logs" USING btree ("correlation_id","id");--> statement-breakpoint
CREATE INDEX "system_logs_actor_idx" ON "system_logs" USING btree ("actor","id");--> statement-breakpoint
CREATE INDEX "trace_spans_trace_idx" ON "trace_spans" USING btree ("trace_id");--> statement-breakpoint
CREATE INDEX "trace_spans_root_idx" ON "trace_spans" USING btree ("is_root","id");--> statement-breakpoint
CREATE INDEX "trace_spans_started_idx" ON "trace_spans" USING btree ("started_at","id");