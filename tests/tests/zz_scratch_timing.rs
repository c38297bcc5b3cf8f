use std::time::Instant;
#[test]
fn timing() {
    let t = Instant::now();
    let db = lessor_tests::pg::database("warm");
    eprintln!("first database(): {:?}", t.elapsed());
    for _ in 0..3 {
        let t = Instant::now();
        let d = lessor_tests::pg::database("x");
        eprintln!("database(): {:?}", t.elapsed());
        let t = Instant::now();
        d.superuser_scalar("SELECT 1");
        eprintln!("superuser_scalar: {:?}", t.elapsed());
        let t = Instant::now();
        d.admin_execute("SELECT 1");
        eprintln!("admin_execute (scram over tcp): {:?}", t.elapsed());
    }
    let t = Instant::now();
    let c = lessor_tests::pg::private_cluster();
    eprintln!("private_cluster: {:?} (self-reported {:?})", t.elapsed(), c.startup_time());
    let t = Instant::now();
    drop(c);
    eprintln!("drop private cluster: {:?}", t.elapsed());
    drop(db);
}
