CREATE INDEX "job_queue_finished_idx" ON "job_queue" USING btree ("finished_at","id");--> statement-breakpoint
CREATE INDEX "smoke_test_results_created_idx" ON "smoke_test_results" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "export_jobs_created_idx" ON "export_jobs" USING btree ("created_at","id");