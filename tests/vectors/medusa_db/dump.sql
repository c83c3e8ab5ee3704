-- Medusa 2.21.2's own tables that `tillkey import medusa` reads (user, customer, auth_identity,
-- provider_identity, api_key, auth_mfa_factor), as a real Medusa 2.21.2 created and filled them: recorded 2026-12-06 by
-- tests/vectors/medusa_db/seed.py (Medusa's HTTP API and `medusa user`) on a fresh `medusa db:migrate`d
-- PostgreSQL 15 database, then: pg_dump --no-owner --no-privileges --no-comments --inserts
-- --rows-per-insert=20 -t '"user"' -t customer -t auth_identity -t provider_identity -t api_key -t auth_mfa_factor.
-- pg_dump's \restrict/\unrestrict psql meta-command lines were removed, so that any client loads it.
-- The passwords and the secret key shown once are in seed.json.
--
-- PostgreSQL database dump
--


-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: api_key; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.api_key (
    id text NOT NULL,
    token text NOT NULL,
    salt text NOT NULL,
    redacted text NOT NULL,
    title text NOT NULL,
    type text NOT NULL,
    last_used_at timestamp with time zone,
    created_by text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    revoked_by text,
    revoked_at timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    deleted_at timestamp with time zone,
    CONSTRAINT api_key_type_check CHECK ((type = ANY (ARRAY['publishable'::text, 'secret'::text])))
);


--
-- Name: auth_identity; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.auth_identity (
    id text NOT NULL,
    app_metadata jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    deleted_at timestamp with time zone
);


--
-- Name: auth_mfa_factor; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.auth_mfa_factor (
    id text NOT NULL,
    auth_identity_id text NOT NULL,
    provider text NOT NULL,
    status text NOT NULL,
    provider_metadata jsonb,
    metadata jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    deleted_at timestamp with time zone
);


--
-- Name: customer; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.customer (
    id text NOT NULL,
    company_name text,
    first_name text,
    last_name text,
    email text,
    phone text,
    has_account boolean DEFAULT false NOT NULL,
    metadata jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    deleted_at timestamp with time zone,
    created_by text
);


--
-- Name: provider_identity; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.provider_identity (
    id text NOT NULL,
    entity_id text NOT NULL,
    provider text NOT NULL,
    auth_identity_id text NOT NULL,
    user_metadata jsonb,
    provider_metadata jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    deleted_at timestamp with time zone
);


--
-- Name: user; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public."user" (
    id text NOT NULL,
    first_name text,
    last_name text,
    email text NOT NULL,
    avatar_url text,
    metadata jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    deleted_at timestamp with time zone
);


--
-- Data for Name: api_key; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.api_key VALUES
	('apk_01M95V2CPZV831BB4JBJK05D6Q', 'pk_6ed48839a0a808c2c617f5697a00f47f9d050a3f364a2e520c03be6da7a70845', '', 'pk_6ed***845', 'Default Publishable API Key', 'publishable', NULL, '', '2026-12-06 14:10:33.824+00', NULL, NULL, '2026-12-06 14:10:33.824+00', NULL),
	('apk_01M95V3K4M0BEC0H7TPKC2EZ9T', 'ef461148d7e23216fc8d56fa7a4bf7e81c17aae5ff9c94a5f68fac083f57f4770e9b03169aa89d64def56337ede53ed72f616af7d94c2af7a504fd76d0f61e18', '7e1e25e7e54035389afacf31ae4d538c', 'sk_97c***4d4', 'ERP', 'secret', NULL, 'user_01M95V2TQYERGG6EFWQMRJ7041', '2026-12-06 14:11:13.173+00', NULL, NULL, '2026-12-06 14:11:13.173+00', NULL),
	('apk_01M95V3KA29MGBH0XMS5BBD2HB', '57a7e301b0526f93443455d49bd6be25472ec14f2128b1af494f72592e50562a0fd7dd8c6d20e2e764addf92ee8d0ca00b3468219ab77f77b0784e9c19e59c78', 'f837795788ed733c60339581d824d327', 'sk_31b***782', 'old ERP', 'secret', NULL, 'user_01M95V2TQYERGG6EFWQMRJ7041', '2026-12-06 14:11:13.346+00', 'user_01M95V2TQYERGG6EFWQMRJ7041', '2026-12-06 14:11:13.445+00', '2026-12-06 14:11:13.459+00', NULL),
	('apk_01M95V3KHTM88Z4EBHPFB7KSNW', 'pk_973685a2ac632a24dbff27e30ecfddc404cc0dd163673162299507d4ba074bef', '', 'pk_973***bef', 'Web shop', 'publishable', NULL, 'user_01M95V2TQYERGG6EFWQMRJ7041', '2026-12-06 14:11:13.595+00', NULL, NULL, '2026-12-06 14:11:13.595+00', NULL);


--
-- Data for Name: auth_identity; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.auth_identity VALUES
	('authid_01M95V2V5AR8S0JMQX4R7MA2QH', '{"user_id": "user_01M95V2TQYERGG6EFWQMRJ7041"}', '2026-12-06 14:10:48.619+00', '2026-12-06 14:10:48.695+00', NULL),
	('authid_01M95V38YK8DKPR2D99RG1C03C', '{"user_id": "user_01M95V38MB0HJSXWE6C7PZZM2C"}', '2026-12-06 14:11:02.74+00', '2026-12-06 14:11:02.796+00', NULL),
	('authid_01M95V3KSVA6CZJFZ3H06KH0M8', '{"customer_id": "cus_01M95V3KY2NYD5MQM4X81FYHPR"}', '2026-12-06 14:11:13.851+00', '2026-12-06 14:11:14.022+00', NULL),
	('authid_01M95V3M77E0X8T91E890Y58ZR', '{"customer_id": "cus_01M95V3M9FFYF30T354TMD4B2N"}', '2026-12-06 14:11:14.279+00', '2026-12-06 14:11:14.362+00', NULL),
	('authid_01M95V3MH72DJQ9EXRN0YEYFKJ', '{"customer_id": "cus_01M95V3MJT64XWH83KXXNFMSJ2"}', '2026-12-06 14:11:14.6+00', '2026-12-06 14:11:14.668+00', NULL);


--
-- Data for Name: auth_mfa_factor; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.auth_mfa_factor VALUES
	('authmfa_01M95V3NDARERJ5QGH0VVT9DQ2', 'authid_01M95V3MH72DJQ9EXRN0YEYFKJ', 'totp', 'enabled', '{"issuer": "Medusa", "secret": "v1:c67pXU9HB9R1YEvZ:YgL16odU0mNQP1Ps-Iq2kg:wdSdaYTbqje-UKeCLlvPURfRTYW0l_aOxJM0knWPUTk"}', '{}', '2026-12-06 14:11:15.499+00', '2026-12-06 14:11:15.542+00', NULL);


--
-- Data for Name: customer; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.customer VALUES
	('cus_01M95V3KY2NYD5MQM4X81FYHPR', NULL, 'Ada', 'Lovelace', 'ada@shop.test', NULL, true, NULL, '2026-12-06 14:11:13.987+00', '2026-12-06 14:11:13.987+00', NULL, NULL),
	('cus_01M95V3M9FFYF30T354TMD4B2N', NULL, 'Bob', 'Builder', 'bob@shop.test', NULL, true, NULL, '2026-12-06 14:11:14.351+00', '2026-12-06 14:11:14.351+00', NULL, NULL),
	('cus_01M95V3MJT64XWH83KXXNFMSJ2', NULL, 'Carol', 'Mfa', 'carol@shop.test', NULL, true, NULL, '2026-12-06 14:11:14.65+00', '2026-12-06 14:11:14.65+00', NULL, NULL),
	('cus_01M95V3N0W2HC8RBKEPANV4941', NULL, 'Guest', 'Only', 'guest@shop.test', NULL, false, NULL, '2026-12-06 14:11:15.101+00', '2026-12-06 14:11:15.101+00', NULL, 'user_01M95V2TQYERGG6EFWQMRJ7041'),
	('cus_01M95V3MYTVFH4PKEG68KZHY81', NULL, 'Gone', 'Deleted', 'gone@shop.test', NULL, true, NULL, '2026-12-06 14:11:15.034+00', '2026-12-06 14:11:15.159+00', '2026-12-06 14:11:15.158+00', NULL);


--
-- Data for Name: provider_identity; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.provider_identity VALUES
	('01M95V2V5AQ2XNYHSE8NTKV3WT', 'owner@shop.test', 'emailpass', 'authid_01M95V2V5AR8S0JMQX4R7MA2QH', NULL, '{"password": "c2NyeXB0AA8AAAAIAAAAAQI6Drbzfzd2LuHm5WGHJ1TbGoXWwZmypmE4AFD0od+jCWKDBnlYtO6yJutfVm3hIGhOuSp1tTtrEYFXsfODJefA2sme58pBMDpkmt0nurDJ"}', '2026-12-06 14:10:48.619+00', '2026-12-06 14:10:48.619+00', NULL),
	('01M95V38YKRVQPBAZ013Y86THE', 'ops@shop.test', 'emailpass', 'authid_01M95V38YK8DKPR2D99RG1C03C', NULL, '{"password": "c2NyeXB0AA8AAAAIAAAAAcaCeAYC3/ar3fNx9n6EqWjSTzASNWynqVhqDz8UNYQm7AoVFQPx9pcZKnRrnxvgCqpVQbxMLDA5LaTEjDct2S/WDh8dPS/kr02UmOZOdebj"}', '2026-12-06 14:11:02.74+00', '2026-12-06 14:11:02.74+00', NULL),
	('01M95V3KST784NCZBVHAYA18QF', 'ada@shop.test', 'emailpass', 'authid_01M95V3KSVA6CZJFZ3H06KH0M8', NULL, '{"password": "c2NyeXB0AA8AAAAIAAAAAVWMMe+5OBf6xCTUov1LoQqH8PNitCRZYqFiDWXEDwDXDnfRfl4daPkBGjXPu2qQXOvapDLBYSWFFfqXEAKL/wi2lJMkXzR93A160Q1Svttl"}', '2026-12-06 14:11:13.851+00', '2026-12-06 14:11:13.851+00', NULL),
	('01M95V3M77JHF2V3CBH1WBP1C3', 'bob@shop.test', 'emailpass', 'authid_01M95V3M77E0X8T91E890Y58ZR', NULL, '{"password": "c2NyeXB0AA8AAAAIAAAAAWOr2liOIiY96rjKGc3kJYfMdqJEsJ1/HaNAvpu6x6ZgtUW9GnA4ZGZPOIneQRa+kcRPvoGDjNNxyTmZoB0IDCtrspyGUAkiMEF1trfO6awf"}', '2026-12-06 14:11:14.279+00', '2026-12-06 14:11:14.279+00', NULL),
	('01M95V3MH7TBA9X7RWXB3PTA73', 'carol@shop.test', 'emailpass', 'authid_01M95V3MH72DJQ9EXRN0YEYFKJ', NULL, '{"password": "c2NyeXB0AA8AAAAIAAAAAbZpLME226izDx6R2l0yk6Ixh5PiMztPR8MtpbfSgXH7PeTSnuefGo/vcdLxWlmbnAJxXokOpJHQoNNCTLMH9Ife75c0VV6PXra0Sc5sSA+e"}', '2026-12-06 14:11:14.6+00', '2026-12-06 14:11:14.6+00', NULL);


--
-- Data for Name: user; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public."user" VALUES
	('user_01M95V2TQYERGG6EFWQMRJ7041', NULL, NULL, 'owner@shop.test', NULL, NULL, '2026-12-06 14:10:48.19+00', '2026-12-06 14:10:48.19+00', NULL),
	('user_01M95V38MB0HJSXWE6C7PZZM2C', NULL, NULL, 'ops@shop.test', NULL, NULL, '2026-12-06 14:11:02.411+00', '2026-12-06 14:11:02.411+00', NULL);


--
-- Name: api_key api_key_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_key
    ADD CONSTRAINT api_key_pkey PRIMARY KEY (id);


--
-- Name: auth_identity auth_identity_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_identity
    ADD CONSTRAINT auth_identity_pkey PRIMARY KEY (id);


--
-- Name: auth_mfa_factor auth_mfa_factor_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_mfa_factor
    ADD CONSTRAINT auth_mfa_factor_pkey PRIMARY KEY (id);


--
-- Name: customer customer_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.customer
    ADD CONSTRAINT customer_pkey PRIMARY KEY (id);


--
-- Name: provider_identity provider_identity_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.provider_identity
    ADD CONSTRAINT provider_identity_pkey PRIMARY KEY (id);


--
-- Name: user user_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public."user"
    ADD CONSTRAINT user_pkey PRIMARY KEY (id);


--
-- Name: IDX_api_key_deleted_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "IDX_api_key_deleted_at" ON public.api_key USING btree (deleted_at) WHERE (deleted_at IS NULL);


--
-- Name: IDX_api_key_redacted; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "IDX_api_key_redacted" ON public.api_key USING btree (redacted) WHERE (deleted_at IS NULL);


--
-- Name: IDX_api_key_revoked_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "IDX_api_key_revoked_at" ON public.api_key USING btree (revoked_at) WHERE (deleted_at IS NULL);


--
-- Name: IDX_api_key_token_unique; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX "IDX_api_key_token_unique" ON public.api_key USING btree (token);


--
-- Name: IDX_api_key_type; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "IDX_api_key_type" ON public.api_key USING btree (type);


--
-- Name: IDX_auth_identity_deleted_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "IDX_auth_identity_deleted_at" ON public.auth_identity USING btree (deleted_at) WHERE (deleted_at IS NULL);


--
-- Name: IDX_auth_mfa_factor_auth_identity_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "IDX_auth_mfa_factor_auth_identity_id" ON public.auth_mfa_factor USING btree (auth_identity_id) WHERE (deleted_at IS NULL);


--
-- Name: IDX_auth_mfa_factor_auth_identity_provider_active; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX "IDX_auth_mfa_factor_auth_identity_provider_active" ON public.auth_mfa_factor USING btree (auth_identity_id, provider) WHERE ((deleted_at IS NULL) AND (status = ANY (ARRAY['pending'::text, 'enabled'::text])));


--
-- Name: IDX_auth_mfa_factor_deleted_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "IDX_auth_mfa_factor_deleted_at" ON public.auth_mfa_factor USING btree (deleted_at) WHERE (deleted_at IS NULL);


--
-- Name: IDX_customer_deleted_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "IDX_customer_deleted_at" ON public.customer USING btree (deleted_at) WHERE (deleted_at IS NULL);


--
-- Name: IDX_customer_email_has_account_unique; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX "IDX_customer_email_has_account_unique" ON public.customer USING btree (email, has_account) WHERE (deleted_at IS NULL);


--
-- Name: IDX_provider_identity_auth_identity_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "IDX_provider_identity_auth_identity_id" ON public.provider_identity USING btree (auth_identity_id);


--
-- Name: IDX_provider_identity_deleted_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "IDX_provider_identity_deleted_at" ON public.provider_identity USING btree (deleted_at) WHERE (deleted_at IS NULL);


--
-- Name: IDX_provider_identity_provider_entity_id; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX "IDX_provider_identity_provider_entity_id" ON public.provider_identity USING btree (entity_id, provider);


--
-- Name: IDX_user_deleted_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "IDX_user_deleted_at" ON public."user" USING btree (deleted_at) WHERE (deleted_at IS NOT NULL);


--
-- Name: IDX_user_email_unique; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX "IDX_user_email_unique" ON public."user" USING btree (email) WHERE (deleted_at IS NULL);


--
-- Name: auth_mfa_factor auth_mfa_factor_auth_identity_id_foreign; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_mfa_factor
    ADD CONSTRAINT auth_mfa_factor_auth_identity_id_foreign FOREIGN KEY (auth_identity_id) REFERENCES public.auth_identity(id) ON UPDATE CASCADE ON DELETE CASCADE;


--
-- Name: provider_identity provider_identity_auth_identity_id_foreign; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.provider_identity
    ADD CONSTRAINT provider_identity_auth_identity_id_foreign FOREIGN KEY (auth_identity_id) REFERENCES public.auth_identity(id) ON UPDATE CASCADE ON DELETE CASCADE;


--
-- PostgreSQL database dump complete
--


