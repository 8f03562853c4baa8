//! Dispatch like Kakao T (issue 13): a ride is offered to one driver at a time, the
//! nearest first; a decline or silence passes it to the next nearest taxi not offered it
//! yet; an accept after the deadline is 409; exactly one taxi ends up with the ride.
//! The harness's accepting drivers are stopped: these drivers answer for themselves.

use e2e::*;
use serde_json::{json, Value};
use std::time::Duration;

const PHONE: &str = "010-1313-0001";

/// Three taxis north of Seoul Station, about 150 m, 600 m and 1.2 km from the pickup.
async fn three_taxis(s: &Saga) -> [String; 3] {
    let mut ids = Vec::new();
    for (num, lat) in [
        ("서울1가0001", 37.5560),
        ("서울1가0002", 37.5600),
        ("서울1가0003", 37.5655),
    ] {
        ids.push(s.register_taxi(num, lat, 126.9707).await.unwrap());
    }
    ids.try_into().unwrap()
}

/// `PUT /taxis/{taxi}/duty` `{"duty":"OffDuty"}`, as the taxi's driver.
async fn off_duty(s: &Saga, taxi: &str) -> Answer {
    s.driver(taxi)
        .send(
            reqwest::Method::PUT,
            &format!("/taxis/{taxi}/duty"),
            &[("content-type", "application/json")],
            Some(br#"{"duty":"OffDuty"}"#.to_vec()),
        )
        .await
        .unwrap()
}

async fn ride(s: &Saga) -> String {
    let a = s.request_grab(PHONE).await.unwrap();
    assert_eq!(a.status, 201, "{}", a.text);
    a.body["id"].as_str().unwrap().to_owned()
}

async fn act(s: &Saga, offer: &Value, step: &str) -> Answer {
    let id = offer["allocationId"].as_str().unwrap();
    s.driver_of(offer)
        .post_raw(&format!("/allocations/{id}/{step}"), b"", &[])
        .await
        .unwrap()
}

/// The open offer of `grab` once it is to `taxi`.
async fn offer_to(s: &Saga, grab: &str, taxi: &str) -> Value {
    let path = format!("/allocations?grabId={grab}");
    s.eventually("an offer to that taxi", Duration::from_secs(30), || {
        let path = path.clone();
        async move {
            let a = s.get(&path).await?;
            Ok(a.body.as_array().and_then(|l| {
                l.iter()
                    .find(|o| o["status"] == json!("Offered") && o["taxiId"] == json!(taxi))
                    .cloned()
            }))
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_declined_ride_goes_to_the_second_nearest_taxi() {
    let mut s = Saga::start().await.unwrap();
    s.answer_offers_myself().await;
    let [nearest, second, _] = three_taxis(&s).await;
    let grab = ride(&s).await;

    let first = offer_to(&s, &grab, &nearest).await;
    assert_eq!(first["offerNumber"], json!(1));
    let view = s
        .status_until(&grab, "offered", |v| {
            v["allocationStatus"] == json!("Offered")
        })
        .await
        .unwrap();
    assert_eq!(view["taxiId"], json!(nearest));
    assert!(view["offerExpiresAt"].is_string(), "{view}");

    let declined = act(&s, &first, "decline").await;
    assert_eq!(declined.status, 200, "{}", declined.text);
    assert_eq!(declined.body["status"], json!("Declined"));
    assert_eq!(
        s.get(&format!("/taxis/{nearest}")).await.unwrap().body["status"],
        json!("Available"),
        "the declining taxi is released"
    );
    act(&s, &first, "accept").await.assert_problem(409);

    let next = offer_to(&s, &grab, &second).await;
    assert_eq!(next["offerNumber"], json!(2));
    let accepted = act(&s, &next, "accept").await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    assert_eq!(accepted.body["status"], json!("Allocated"));
    let view = s
        .status_until(&grab, "allocated", |v| {
            v["grabStatus"] == json!("Allocated")
        })
        .await
        .unwrap();
    assert_eq!(
        view["taxiId"],
        json!(second),
        "the second-nearest has the ride"
    );
    s.converged(&[grab]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unanswered_offer_expires_and_moves_on() {
    let mut s = Saga::start_with(vec![("offer_ttl_secs", "1")])
        .await
        .unwrap();
    s.answer_offers_myself().await;
    let [nearest, second, _] = three_taxis(&s).await;
    let grab = ride(&s).await;
    let first = offer_to(&s, &grab, &nearest).await;
    // Nobody answers. The periodic flush (the PingSource) sweeps the offer once it is due.
    let next = offer_to(&s, &grab, &second).await;
    assert_eq!(next["offerNumber"], json!(2));
    let late = act(&s, &first, "accept").await;
    late.assert_problem(409);
    assert!(late.text.contains("expired"), "{}", late.text);
    let all = s.get(&format!("/allocations?grabId={grab}")).await.unwrap();
    let statuses: Vec<&Value> = all
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["status"])
        .collect();
    assert!(statuses.contains(&&json!("Expired")), "{}", all.text);
    assert_eq!(act(&s, &next, "accept").await.status, 200);
    s.converged(&[grab]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_every_taxi_said_no_the_ride_fails_and_is_refunded() {
    let mut s = Saga::start().await.unwrap();
    s.answer_offers_myself().await;
    let taxis = three_taxis(&s).await;
    let grab = ride(&s).await;
    for taxi in &taxis {
        let offer = offer_to(&s, &grab, taxi).await;
        assert_eq!(act(&s, &offer, "decline").await.status, 200);
    }
    let view = s
        .status_until(&grab, "failed and refunded", |v| {
            v["allocationStatus"] == json!("Failed") && v["paymentStatus"] == json!("Refunded")
        })
        .await
        .unwrap();
    assert_eq!(view["grabStatus"], json!("Failed"));
    s.converged(&[grab]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_during_an_offer_withdraws_it_and_an_accept_then_is_409() {
    let mut s = Saga::start().await.unwrap();
    s.answer_offers_myself().await;
    let [nearest, ..] = three_taxis(&s).await;
    let grab = ride(&s).await;
    let offer = offer_to(&s, &grab, &nearest).await;
    let d = s
        .rider(PHONE)
        .delete(&format!("/grabs/{grab}"))
        .await
        .unwrap();
    assert_eq!(d.status, 204, "{}", d.text);
    s.status_until(&grab, "withdrawn and refunded", |v| {
        v["allocationStatus"] == json!("Cancelled") && v["paymentStatus"] == json!("Refunded")
    })
    .await
    .unwrap();
    act(&s, &offer, "accept").await.assert_problem(409);
    assert_eq!(
        s.get(&format!("/taxis/{nearest}")).await.unwrap().body["status"],
        json!("Available")
    );
    s.converged(&[grab]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_off_duty_taxi_is_never_offered_and_going_off_duty_declines_an_open_offer() {
    let mut s = Saga::start().await.unwrap();
    s.answer_offers_myself().await;
    let [nearest, second, third] = three_taxis(&s).await;
    let off = off_duty(&s, &nearest).await;
    assert_eq!(off.status, 200, "{}", off.text);
    assert_eq!(off.body["duty"], json!("OffDuty"));
    let grab = ride(&s).await;
    let offer = offer_to(&s, &grab, &second).await;
    // The second driver goes off duty with the offer open: it passes to the third.
    let gone = off_duty(&s, &second).await;
    assert_eq!(gone.status, 200, "{}", gone.text);
    act(&s, &offer, "accept").await.assert_problem(409);
    let last = offer_to(&s, &grab, &third).await;
    assert_eq!(act(&s, &last, "accept").await.status, 200);
    // Someone else's taxi is not confirmed to exist; a location report moves the taxi.
    let foreign = s
        .driver(&third)
        .send(
            reqwest::Method::PUT,
            &format!("/taxis/{nearest}/location"),
            &[("content-type", "application/json")],
            Some(br#"{"location":{"lat":37.5,"lng":127.0}}"#.to_vec()),
        )
        .await
        .unwrap();
    foreign.assert_problem(404);
    s.converged(&[grab]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rider_sees_the_available_taxis_nearby_as_dots_without_plate_or_id() {
    let mut s = Saga::start().await.unwrap();
    s.answer_offers_myself().await;
    let [nearest, second, _] = three_taxis(&s).await;
    let near = "/taxis/nearby?lat=37.5547&lng=126.9707";
    let dots = s.rider(PHONE).get(near).await.unwrap();
    assert_eq!(dots.status, 200, "{}", dots.text);
    let lats = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|d| d["lat"].as_f64().unwrap())
            .collect()
    };
    assert_eq!(
        lats(&dots.body),
        vec![37.556, 37.56, 37.566],
        "nearest first, coarse: {}",
        dots.text
    );
    for d in dots.body.as_array().unwrap() {
        let keys: Vec<&String> = d.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["distanceMeters", "lat", "lng"],
            "nothing that names a taxi: {d}"
        );
        assert_eq!(d["lng"], json!(126.971));
        assert_eq!(d["distanceMeters"].as_u64().unwrap() % 100, 0);
    }
    // An off-duty taxi is not shown, nor one that holds an offer.
    let off = off_duty(&s, &nearest).await;
    assert_eq!(off.status, 200, "{}", off.text);
    let grab = ride(&s).await;
    let _ = offer_to(&s, &grab, &second).await;
    let left = s.rider(PHONE).get(near).await.unwrap();
    assert_eq!(lats(&left.body), vec![37.566], "{}", left.text);
}

/// More taxis than the allocator reads per offer, registered farthest first: the ride still
/// goes to the nearest, and after a decline to the next nearest (SQLite orders and limits
/// the candidates; insertion order must not decide).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn among_many_taxis_the_nearest_gets_the_offer_whatever_the_order_they_joined() {
    let mut s = Saga::start().await.unwrap();
    s.answer_offers_myself().await;
    let mut ids = Vec::new();
    for i in (0..24).rev() {
        // 100 m apart going north of the pickup, and east of it a little, both shrinking.
        let (lat, lng) = (
            37.5547 + 0.0009 * (i + 1) as f64,
            126.9707 + 0.0002 * i as f64,
        );
        ids.push(
            s.register_taxi(&format!("서울2가{:04}", i), lat, lng)
                .await
                .unwrap(),
        );
    }
    ids.reverse(); // ids[0] is the nearest
    let grab = ride(&s).await;
    let first = offer_to(&s, &grab, &ids[0]).await;
    assert_eq!(act(&s, &first, "decline").await.status, 200);
    let second = offer_to(&s, &grab, &ids[1]).await;
    assert_eq!(second["offerNumber"], json!(2));
    assert_eq!(act(&s, &second, "accept").await.status, 200);
    s.converged(&[grab]).await.unwrap();
}
