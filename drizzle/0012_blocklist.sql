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
ALTER TABLE "blocklist_rules" ADD CONSTRAINT "blocklist_rules_policy_id_security_policies_id_fk" FOREIGN KEY ("policy_id") REFERENCES "public"."security_policies"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "blocklist_rules_value_idx" ON "blocklist_rules" USING btree ("value");--> statement-breakpoint
CREATE INDEX "blocklist_rules_type_id_idx" ON "blocklist_rules" USING btree ("type","id");--> statement-breakpoint
CREATE INDEX "blocklist_rules_expires_at_idx" ON "blocklist_rules" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "security_event_rollups_bucket_idx" ON "security_event_rollups" USING btree ("bucket","kind");--> statement-breakpoint
CREATE INDEX "security_incidents_created_at_idx" ON "security_incidents" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "security_incidents_kind_id_idx" ON "security_incidents" USING btree ("kind","id");