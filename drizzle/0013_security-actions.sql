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
ALTER TABLE "action_approvals" ADD CONSTRAINT "action_approvals_action_id_security_actions_id_fk" FOREIGN KEY ("action_id") REFERENCES "public"."security_actions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "security_actions_status_id_idx" ON "security_actions" USING btree ("status","id");--> statement-breakpoint
CREATE INDEX "security_actions_status_expires_idx" ON "security_actions" USING btree ("status","expires_at");--> statement-breakpoint
CREATE INDEX "security_actions_requested_by_id_idx" ON "security_actions" USING btree ("requested_by_id","id");