//! What watches the payment path: alarms that notify the alerts topic (`monitoring.alarms`) and
//! the operators' dashboard (`monitoring.dashboard`).

pub mod alarms;
pub mod dashboard;
