CREATE TABLE "blocklist_rules" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "blocklist_rules_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"policy_id" bigint,
	"type" text NOT NULL,
	"action" text DEFAULT 'block' NOT NULL,
	"value" text NOT NULL,
	"severity" text DEFAULT 'medium' NOT NULL,
	"reason" text DEFAULT '' NOT NULL,
	"origin" text DEFAULT 'manual' NOT NULL,
	"expires_at" timestamp with time zone,
	"offences" integer DEFAULT 1 NOT NULL,
	"last_offence_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "blocklist_rules_policy_type_action_value_key" UNIQUE NULLS NOT DISTINCT("policy_id","type","action","value"),
	CONSTRAINT "blocklist_rules_type" CHECK ("blocklist_rules"."type" in ('ip', 'cidr', 'user_agent', 'path', 'api_client')),
	CONSTRAINT "blocklist_rules_action" CHECK ("blocklist_rules"."action" in ('block', 'allow'))
);
--> statement-breakpoint
CREATE TABLE "security_event_rollups" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "security_event_rollups_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"bucket" timestamp with time zone NOT NULL,
	"kind" text NOT NULL,
	"rule_id" bigint,
	"rule_type" text,
	"policy_id" bigint,
	"address" text,
	"count" integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE "security_incidents" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "security_incidents_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"kind" text NOT NULL,
	"severity" text NOT NULL,
	"source_ip" text,
	"summary" text NOT NULL,
	"details" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"rule_id" bigint,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "security_policies" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "security_policies_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"name" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"mode" text DEFAULT 'enforce' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "security_policies_name_key" UNIQUE("name"),
	CONSTRAINT "security_policies_mode" CHECK ("security_policies"."mode" in ('enforce', 'monitor'))
);
--> statement-breakpoint
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
CREATE TABLE "action_approvals" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "action_approvals_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"action_id" bigint NOT NULL,
	"decision" varchar(16) NOT NULL,
	"comment" text,
	"approver_type" text NOT NULL,
	"approver_id" text NOT NULL,
	"approver_key_id" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "action_approvals_action_approver_key" UNIQUE("action_id","approver_id"),
	CONSTRAINT "action_approvals_decision_check" CHECK ("action_approvals"."decision" in ('approve', 'reject'))
);
--> statement-breakpoint
CREATE TABLE "security_actions" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "security_actions_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"type" varchar(32) NOT NULL,
	"params" jsonb NOT NULL,
	"reason" text NOT NULL,
	"severity" varchar(16) NOT NULL,
	"status" varchar(16) DEFAULT 'pending' NOT NULL,
	"required_approvals" integer NOT NULL,
	"approvals" integer DEFAULT 0 NOT NULL,
	"requested_by_type" text NOT NULL,
	"requested_by_id" text NOT NULL,
	"requested_by_key_id" text,
	"expires_at" timestamp with time zone NOT NULL,
	"result" jsonb,
	"error" text,
	"decided_at" timestamp with time zone,
	"execution_started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "security_actions_status_check" CHECK ("security_actions"."status" in ('pending', 'approved', 'executing', 'executed', 'failed', 'rejected', 'cancelled', 'expired')),
	CONSTRAINT "security_actions_severity_check" CHECK ("security_actions"."severity" in ('low', 'medium', 'high', 'critical')),
	CONSTRAINT "security_actions_type_check" CHECK ("security_actions"."type" in ('block_ip', 'unblock_ip', 'revoke_api_key', 'suspend_client', 'set_maintenance_mode', 'disable_flag')),
	CONSTRAINT "security_actions_approvals_check" CHECK ("security_actions"."required_approvals" between 1 and 10 and "security_actions"."approvals" >= 0)
);
--> statement-breakpoint
ALTER TABLE "blocklist_rules" ADD CONSTRAINT "blocklist_rules_policy_id_security_policies_id_fk" FOREIGN KEY ("policy_id") REFERENCES "public"."security_policies"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "action_approvals" ADD CONSTRAINT "action_approvals_action_id_security_actions_id_fk" FOREIGN KEY ("action_id") REFERENCES "public"."security_actions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "blocklist_rules_value_idx" ON "blocklist_rules" USING btree ("value");--> statement-breakpoint
CREATE INDEX "blocklist_rules_type_id_idx" ON "blocklist_rules" USING btree ("type","id");--> statement-breakpoint
CREATE INDEX "blocklist_rules_expires_at_idx" ON "blocklist_rules" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "security_event_rollups_bucket_idx" ON "security_event_rollups" USING btree ("bucket","kind");--> statement-breakpoint
CREATE INDEX "security_incidents_created_at_idx" ON "security_incidents" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "security_incidents_kind_id_idx" ON "security_incidents" USING btree ("kind","id");--> statement-breakpoint
CREATE INDEX "honeypot_source_rollups_top_idx" ON "honeypot_source_rollups" USING btree ("period","bucket","hits" DESC NULLS LAST,"source_ip");--> statement-breakpoint
CREATE INDEX "honeypot_telemetry_honeypot_id_idx" ON "honeypot_telemetry" USING btree ("honeypot_id","id");--> statement-breakpoint
CREATE INDEX "honeypot_telemetry_occurred_at_idx" ON "honeypot_telemetry" USING btree ("occurred_at");--> statement-breakpoint
CREATE INDEX "security_actions_status_id_idx" ON "security_actions" USING btree ("status","id");--> statement-breakpoint
CREATE INDEX "security_actions_status_expires_idx" ON "security_actions" USING btree ("status","expires_at");--> statement-breakpoint
CREATE INDEX "security_actions_requested_by_id_idx" ON "security_actions" USING btree ("requested_by_id","id");--> statement-breakpoint
CREATE INDEX "security_actions_created_at_idx" ON "security_actions" USING btree ("created_at");