CREATE TABLE "commit_tokens" (
	"at" bigint NOT NULL,
	"token" bigint NOT NULL,
	"burned" boolean DEFAULT false NOT NULL,
	CONSTRAINT "commit_tokens_at_token_pk" PRIMARY KEY("at","token")
);
