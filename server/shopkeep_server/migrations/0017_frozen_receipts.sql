-- A frozen player's receipt redemptions are refused too (sk_risk_admit, from store/receipts.py
-- before the store is asked, and again in sk_redeem_receipt), and recorded as the refusals of
-- the operation `receipt`.
ALTER TABLE risk_events DROP CONSTRAINT risk_events_operation_check,
    ADD CONSTRAINT risk_events_operation_check
        CHECK (operation IN ('purchase', 'grant', 'refund', 'consume', 'redeem', 'hold',
                             'receipt'));
