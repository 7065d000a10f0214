DROP INDEX "admin_operations_operation_idx";--> statement-breakpoint
CREATE INDEX "admin_operations_actor_type_idx" ON "admin_operations" USING btree ("actor_type","id");--> statement-breakpoint
CREATE INDEX "admin_operations_key_idx" ON "admin_operations" USING btree ("key_id","id");--> statement-breakpoint
CREATE INDEX "admin_operations_result_idx" ON "admin_operations" USING btree ("result","id");--> statement-breakpoint
CREATE INDEX "admin_operations_operation_idx" ON "admin_operations" USING btree ("operation" text_pattern_ops,"id");